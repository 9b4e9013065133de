/**
 * Which PostgreSQL servers a client may ask for. Entries are `host:port`; a host may start with
 * `*.` to stand for exactly one DNS label (`*.db.example.com:5432`). IP addresses only ever match
 * an entry that names the same address, written the same canonical way, so no spelling of an
 * address (`2130706433`, `0x7f.1`, `127.1`, `[::ffff:127.0.0.1]`) can reach around the list.
 */

export interface Target {
  readonly host: string;
  readonly port: number;
}

/** Why a requested target was refused; null when it is allowed. */
export type TargetRefusal = string;

export interface TargetEntry {
  readonly host: string;
  readonly wildcard: boolean;
  readonly port: number;
}

/** Parses PG_TARGETS; returns the problems found, if any. */
export function parseTargets(list: string): { entries: TargetEntry[]; problems: string[] } {
  const entries: TargetEntry[] = [];
  const problems: string[] = [];
  for (const raw of list
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')) {
    const match = /^(.+):(\d{1,5})$/.exec(raw);
    const port = Number(match?.[2]);
    const host = match ? canonicalHost(match[1]!) : null;
    if (!match || host === null || port < 1 || port > 65535) {
      problems.push(`PG_TARGETS: "${raw}" is not host:port`);
      continue;
    }
    const wildcard = host.startsWith('*.');
    if (wildcard && (isIpLiteral(host.slice(2)) || host.slice(2).split('.').length < 2)) {
      problems.push(`PG_TARGETS: "${raw}" may use *. only before a domain with at least two labels`);
      continue;
    }
    entries.push({ host: wildcard ? host.slice(2) : host, wildcard, port });
  }
  return { entries, problems };
}

/** Decides a client's request for `host`:`port` against the entries, without any I/O. */
export function chooseTarget(
  entries: readonly TargetEntry[],
  host: string | null,
  port: string | null,
): Target | TargetRefusal {
  if (host === null || host === '') return 'the client named no target host';
  const wanted = canonicalHost(host);
  if (wanted === null || wanted.startsWith('*')) return `"${host}" is not a host name or canonical IP address`;
  const portNumber = port === null || port === '' ? 5432 : Number(port);
  if (!/^\d{1,5}$/.test(port ?? '5432') || portNumber < 1 || portNumber > 65535) return `"${port}" is not a port`;
  const allowed = entries.some(
    (entry) =>
      entry.port === portNumber &&
      (entry.wildcard
        ? !isIpLiteral(wanted) &&
          wanted.endsWith(`.${entry.host}`) &&
          !wanted.slice(0, -entry.host.length - 1).includes('.')
        : entry.host === wanted),
  );
  return allowed ? { host: wanted, port: portNumber } : `target "${host}:${portNumber}" is not allowed`;
}

/** Where drivers connect when the user names nothing (libpq, pg and postgres.js alike). */
const DRIVER_DEFAULT_HOSTS = new Set(['localhost', '127.0.0.1', '[0:0:0:0:0:0:0:1]']);
const DRIVER_DEFAULT_PORT = 5432;

/**
 * With one fixed server, the host and port a driver names must name that server or be the
 * drivers' defaults (localhost:5432, what they send when the user sets nothing); anything else
 * names another server, and connecting to the fixed one instead would let the client believe
 * it reached a server it did not. Null when allowed.
 */
export function checkFixedTarget(fixed: Target, host: string | null, port: string | null): TargetRefusal | null {
  // Drivers write IPv6 addresses without brackets.
  const named =
    host === null || host === ''
      ? null
      : canonicalHost(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
  const portNumber = port === null || port === '' ? null : Number(port);
  const namesFixed =
    (host === null || host === '' || named === canonicalHost(fixed.host)) &&
    (portNumber === null || portNumber === fixed.port);
  const namesDefault =
    (host === null || host === '' || (named !== null && DRIVER_DEFAULT_HOSTS.has(named))) &&
    (portNumber === null || portNumber === DRIVER_DEFAULT_PORT);
  if (namesFixed || namesDefault) return null;
  return `this bridge serves one database server; "${host ?? ''}:${port ?? DRIVER_DEFAULT_PORT}" is not it`;
}

/**
 * Lower-case DNS name, canonical dotted-quad IPv4, or bracketed IPv6 (IPv4-mapped addresses
 * written as IPv4); null for anything else, including other spellings of IPv4 addresses.
 */
export function canonicalHost(raw: string): string | null {
  const host = raw.trim().toLowerCase().replace(/\.$/, '');
  if (host.startsWith('[') && host.endsWith(']')) return canonicalIpv6(host.slice(1, -1));
  if (/^[0-9.]+$/.test(host) || /^0x/.test(host) || /\.0x/.test(host)) {
    // Digits and dots only: it must be a canonical dotted-quad, or it is refused.
    const parts = host.split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return null;
    return host;
  }
  if (host.includes(':')) return null; // IPv6 must be bracketed
  const labels = host.split('.');
  const label = /^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/;
  if (host.length > 253 || !labels.every((l, i) => label.test(l) && (l !== '*' || i === 0))) return null;
  if (/^\d+$/.test(labels.at(-1)!)) return null; // a numeric last label is an address in disguise
  return host;
}

function canonicalIpv6(text: string): string | null {
  if (!/^[0-9a-f:.]+$/.test(text)) return null;
  // A dotted IPv4 tail (::ffff:127.0.0.1) becomes its two 16-bit groups.
  const dotted = /^(.*:)(\d+\.[0-9.]+)$/.exec(text);
  if (dotted) {
    const v4 = canonicalHost(dotted[2]!);
    if (v4 === null || !/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return null;
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (half: string) => (half === '' ? [] : half.split(':'));
  const head = parse(halves[0]!);
  const tail = parse(halves[1] ?? '');
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  const words = groups.map((g) => parseInt(g, 16));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`;
  }
  return `[${words.map((w) => w.toString(16)).join(':')}]`;
}

function isIpLiteral(host: string): boolean {
  return host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host);
}
