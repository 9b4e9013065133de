import { describe, expect, it } from 'vitest';
import { canonicalHost, checkFixedTarget, chooseTarget, parseTargets } from '../../worker/policy/targets.js';

const { entries, problems } = parseTargets(
  'db.example.com:5432, *.pg.example.net:6543, 10.1.2.3:5432, [2001:db8::7]:5432',
);

describe('PG_TARGETS', () => {
  it('parses host:port entries', () => {
    expect(problems).toEqual([]);
    expect(entries).toHaveLength(4);
    expect(parseTargets('db:5432, nope, *.com:5432, *.1.2.3:5432, db:70000').problems).toHaveLength(4);
  });

  it.each([
    ['db.example.com', '5432'],
    ['DB.Example.COM.', null],
    ['eu.pg.example.net', '6543'],
    ['10.1.2.3', '5432'],
    ['[2001:db8:0:0:0:0:0:7]', '5432'],
  ])('allows %s:%s', (host, port) => {
    expect(typeof chooseTarget(entries, host, port)).toBe('object');
  });

  it.each([
    ['another host', 'evil.example.com', '5432'],
    ['another port', 'db.example.com', '22'],
    ['the wildcard domain itself', 'pg.example.net', '6543'],
    ['two labels under a wildcard', 'a.b.pg.example.net', '6543'],
    ['the cloud metadata address', '169.254.169.254', '80'],
    ['localhost', 'localhost', '5432'],
    ['loopback', '127.0.0.1', '5432'],
    ['loopback as one number', '2130706433', '5432'],
    ['loopback in hex', '0x7f.1', '5432'],
    ['loopback shortened', '127.1', '5432'],
    ['loopback in octal', '0177.0.0.1', '5432'],
    ['an allowed address with a leading zero', '10.1.2.03', '5432'],
    ['an allowed address as one number', '167838211', '5432'],
    ['IPv4-mapped loopback', '[::ffff:127.0.0.1]', '5432'],
    ['IPv6 loopback', '[::1]', '5432'],
    ['unbracketed IPv6', '2001:db8::7', '5432'],
    ['a zone index', '[fe80::1%25eth0]', '5432'],
    ['a wildcard request', '*.pg.example.net', '6543'],
    ['no host', null, '5432'],
    ['a port out of range', 'db.example.com', '70000'],
    ['a port with a sign', 'db.example.com', '+5432'],
    ['a user@host trick', 'db.example.com@evil.com', '5432'],
  ])('refuses %s', (_, host, port) => {
    expect(typeof chooseTarget(entries, host, port)).toBe('string');
  });

  it('writes addresses one canonical way', () => {
    expect(canonicalHost('[::FFFF:7f00:1]')).toBe('127.0.0.1');
    expect(canonicalHost('[2001:DB8::7]')).toBe('[2001:db8:0:0:0:0:0:7]');
    expect(canonicalHost('1.2.3.4')).toBe('1.2.3.4');
    expect(canonicalHost('1.2.3.256')).toBeNull();
  });
});

describe('the host and port a driver names, with one fixed server', () => {
  const fixed = { host: 'db.example.com', port: 6432 };

  it.each([
    ['nothing', null, null],
    ["the drivers' defaults", 'localhost', '5432'],
    ['the defaults as addresses', '127.0.0.1', '5432'],
    ['the IPv6 loopback, as drivers write it', '::1', '5432'],
    ['the fixed server', 'DB.example.com', '6432'],
    ['the fixed server without a port', 'db.example.com', null],
    ['only the port of the fixed server', '', '6432'],
  ])('allows %s', (_, host, port) => {
    expect(checkFixedTarget(fixed, host, port)).toBeNull();
  });

  it.each([
    ['another host', 'unreachable.example', '5432'],
    ['another port of localhost', 'localhost', '6543'],
    ['another port of the fixed server', 'db.example.com', '5432'],
    ['another address', '10.0.0.7', null],
    ['a spelling that is not an address', '0x7f.1', '5432'],
  ])('refuses %s', (_, host, port) => {
    expect(checkFixedTarget(fixed, host, port)).toEqual(expect.any(String));
  });
});
