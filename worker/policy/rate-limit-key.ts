/**
 * What the rate limiter counts a client by: the token's subject when tokens are checked, else its
 * address as Cloudflare's edge reports it (`CF-Connecting-IP`). An IPv6 client is counted by its
 * /64: a single subscriber, host or cloud instance is commonly given a whole /64, and counting
 * addresses would give it 2^64 separate limits.
 */
export function rateLimitKey(address: string | null, subject: unknown): string {
  if (typeof subject === 'string') return `sub:${subject}`;
  if (address === null) return 'ip:unknown';
  if (!address.includes(':')) return `ip:${address}`;
  const groups = ipv6Groups(address);
  if (groups === null) return `ip:${address.toLowerCase()}`;
  // ::ffff:a.b.c.d is an IPv4 client.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `ip:${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `ip:${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

const GROUP = /^[0-9a-f]{1,4}$/i;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The eight 16-bit groups of an IPv6 address (with `::` and a dotted IPv4 tail), or null. */
function ipv6Groups(address: string): number[] | null {
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const parse = (half: string): number[] | null => {
    if (half === '') return [];
    const parts = half.split(':');
    const groups: number[] = [];
    for (const [i, part] of parts.entries()) {
      const v4 = i === parts.length - 1 ? IPV4.exec(part) : null;
      if (v4) {
        const octets = v4.slice(1).map(Number);
        if (octets.some((o) => o > 255)) return null;
        groups.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
      } else if (GROUP.test(part)) groups.push(parseInt(part, 16));
      else return null;
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  return missing >= 1 ? [...head, ...Array<number>(missing).fill(0), ...tail] : null;
}
