import { describe, expect, it } from 'vitest';
import { rateLimitKey } from '../../worker/policy/rate-limit-key.js';

describe('rateLimitKey', () => {
  it("counts a token's subject, whatever the address", () => {
    expect(rateLimitKey('198.51.100.7', 'alice')).toBe('sub:alice');
    expect(rateLimitKey('2001:db8::1', 'alice')).toBe('sub:alice');
  });

  it('counts an IPv4 client by its address, and one without an address as one client', () => {
    expect(rateLimitKey('198.51.100.7', undefined)).toBe('ip:198.51.100.7');
    expect(rateLimitKey(null, undefined)).toBe('ip:unknown');
  });

  it.each([
    ['2001:db8:1:2::1', 'ip:2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff:ffff:ffff:ffff', 'ip:2001:db8:1:2::/64'],
    ['2001:db8:1:2:3:4:5:6', 'ip:2001:db8:1:2::/64'],
    ['2001:db8::', 'ip:2001:db8:0:0::/64'],
    ['::1', 'ip:0:0:0:0::/64'],
    ['2001:db8:1:2::198.51.100.7', 'ip:2001:db8:1:2::/64'],
  ])('counts an IPv6 client by its /64: %s', (address, key) => {
    expect(rateLimitKey(address, undefined)).toBe(key);
  });

  it('counts an IPv4-mapped IPv6 address as the IPv4 client it is', () => {
    expect(rateLimitKey('::ffff:198.51.100.7', undefined)).toBe('ip:198.51.100.7');
    expect(rateLimitKey('::FFFF:c633:6407', undefined)).toBe('ip:198.51.100.7');
  });

  it.each([
    '2001:db8::1::2',
    '2001:db8:1:2:3:4:5:6:7',
    '2001:db8:1:2:3:4:5',
    '2001:db8::g',
    '::ffff:1.2.3.256',
    '1:2:3:4:5:6:7::8',
  ])('keeps an address it cannot read as it is (lowercased): %s', (address) => {
    expect(rateLimitKey(address, undefined)).toBe(`ip:${address.toLowerCase()}`);
  });
});
