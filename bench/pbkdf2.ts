/**
 * How long PBKDF2-HMAC-SHA-256 (SCRAM-SHA-256's SaltedPassword) holds a Worker's thread in local
 * workerd, per iteration count. The bridge refuses iteration counts above SCRAM_MAX_ITERATIONS
 * because of this: the derivation runs on the thread every session of the isolate shares.
 *
 * Run: npx tsx bench/pbkdf2.ts
 */
import { compatibilityDate, TidyMiniflare } from '../dev/bridge.js';

// 1: the request alone, to subtract from the others.
const COUNTS = [1, 4096, 10_000, 100_000, 600_000, 1_000_000, 5_000_000];
const RUNS = 5;

const script = `
export default {
  async fetch(request) {
    const iterations = Number(new URL(request.url).searchParams.get('i'));
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode('pencil'), 'PBKDF2', false, ['deriveBits']);
    const salt = crypto.getRandomValues(new Uint8Array(16));
    await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, 256);
    // Timed from outside: a Worker's own clock does not advance while it computes.
    return new Response('ok');
  },
};`;

const mf = new TidyMiniflare({ modules: true, script, compatibilityDate });
try {
  const url = await mf.ready;
  await mf.dispatchFetch(new URL('/?i=4096', url)); // warm up
  console.log('iterations  median ms  (min–max, whole request, ' + RUNS + ' runs)');
  for (const count of COUNTS) {
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      await (await mf.dispatchFetch(new URL(`/?i=${count}`, url))).text();
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const fmt = (ms: number) => ms.toFixed(1);
    console.log(
      `${String(count).padStart(10)}  ${fmt(times[RUNS >> 1]!).padStart(9)}  (${fmt(times[0]!)}–${fmt(times.at(-1)!)})`,
    );
  }
} finally {
  await mf.dispose();
}
