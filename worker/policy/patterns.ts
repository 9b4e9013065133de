/**
 * Comma-separated allowlists where `*` matches any run of characters: `app_*, reporting`.
 * An empty list matches nothing; `*` alone matches everything.
 */
export function compilePatterns(list: string): (value: string) => boolean {
  const patterns = list
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => new RegExp(`^${p.split('*').map(escapeRegExp).join('.*')}$`, 's'));
  return (value) => patterns.some((pattern) => pattern.test(value));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
