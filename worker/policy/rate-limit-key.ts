import { canonicalHost } from './targets.js';

/**
 * What the rate limiter counts a client by: the token's subject when tokens are checked, else its
 * address as Cloudflare's edge reports it (`CF-Connecting-IP`). An IPv6 client is counted by its
 * /64: a single subscriber, host or cloud instance is commonly given a whole /64, and counting
 * addresses would give it 2^64 separate limits. An IPv4-mapped address is the IPv4 client it is.
 */
export function rateLimitKey(address: string | null, subject: unknown): string {
  if (typeof subject === 'string') return `sub:${subject}`;
  if (address === null) return 'ip:unknown';
  if (!address.includes(':')) return `ip:${address}`;
  // canonicalHost reads a bracketed IPv6 address as targets are read: all eight groups, or IPv4.
  const canonical = canonicalHost(`[${address}]`);
  if (canonical === null) return `ip:${address.toLowerCase()}`;
  if (!canonical.startsWith('[')) return `ip:${canonical}`;
  return `ip:${canonical.slice(1, -1).split(':').slice(0, 4).join(':')}::/64`;
}
