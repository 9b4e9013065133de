import fc from 'fast-check';
import { RawClient } from './raw-client.js';
import type { startRecordingProxy } from './recording-proxy.js';
import { referenceVerdict } from './reference-framer.js';
import { frameList, frameMutation, mutate, split, type FrameMutation } from './fuzz-properties.js';
import { concat, errorFields, startupMessage, terminate } from './wire.js';

type Proxy = Awaited<ReturnType<typeof startRecordingProxy>>;
const TERMINATE = terminate();

const isPrefix = (prefix: Uint8Array, of: Uint8Array) =>
  prefix.length <= of.length && Buffer.compare(Buffer.from(prefix), Buffer.from(of.subarray(0, prefix.length))) === 0;

/**
 * One live case: log in through the bridge (real SCRAM), send a mutated frame stream split across
 * WebSocket messages, and check what PostgreSQL received (through the recording proxy) against the
 * reference model: the bytes after login are a prefix of what the model allows, optionally followed
 * by the bridge's own Terminate, and a refusal reaches the client as a FATAL ErrorResponse.
 */
export async function liveCase(
  bridgeUrl: string,
  proxy: Proxy,
  login: { user: string; password: string; database: string },
  frames: Uint8Array[],
  change: FrameMutation | null,
  cuts: number[],
): Promise<void> {
  const client = await RawClient.connect(bridgeUrl, login);
  const connection = proxy.connections.at(-1)!;
  const loginBytes = concat(...client.sent);

  const fuzzed = mutate({ startup: new Uint8Array(), frames }, change);
  for (const chunk of split(fuzzed, cuts)) if (chunk.length > 0) client.send(chunk);
  const expected = referenceVerdict(concat(startupMessage({ user: 'u' }), fuzzed));

  // A refusal, PostgreSQL ending the session, or nothing: then the client leaves.
  const closeCode = await client.closed(expected.refusedWith ? 3000 : 300).catch(() => {
    client.close();
    return undefined;
  });
  await Promise.race([connection.closed, new Promise((r) => setTimeout(r, 3000))]);

  const received = concat(...connection.toServer);
  if (!isPrefix(loginBytes, received)) throw new Error('PostgreSQL did not receive the login as sent');
  let afterLogin = received.subarray(loginBytes.length);
  if (!isPrefix(afterLogin, expected.forwarded)) {
    const withoutGoodbye = afterLogin.subarray(0, afterLogin.length - TERMINATE.length);
    if (
      !isPrefix(afterLogin.subarray(withoutGoodbye.length), TERMINATE) ||
      !isPrefix(withoutGoodbye, expected.forwarded)
    ) {
      throw new Error(
        `PostgreSQL received ${afterLogin.length} bytes beyond what the model allows (${expected.forwarded.length})`,
      );
    }
    afterLogin = withoutGoodbye;
  }

  if (closeCode === 1002) {
    if (!expected.refusedWith) throw new Error('the bridge refused a stream the model accepts');
    const last = client.drain().at(-1);
    if (last?.type !== 'E' || errorFields(last.body).C !== expected.refusedWith) {
      throw new Error(`refused without a FATAL ${expected.refusedWith} as the last message`);
    }
  }
}

export const liveProperty = (
  bridgeUrl: string,
  proxy: Proxy,
  login: { user: string; password: string; database: string },
) =>
  fc.asyncProperty(
    frameList,
    fc.option(frameMutation(), { nil: null }),
    fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
    (frames, change, cuts) => liveCase(bridgeUrl, proxy, login, frames, change, cuts),
  );
