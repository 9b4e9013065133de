import fc from 'fast-check';
import { FrontendFramer, type FrontendEvent } from '../../worker/protocol/frontend-framer.js';
import { referenceVerdict } from './reference-framer.js';
import {
  Bytes,
  bind,
  concat,
  execute,
  flush,
  message,
  parse,
  query,
  startupMessage,
  sync,
  sslRequest,
  gssencRequest,
} from './wire.js';

const SQLSTATES = new Set(['08P01', '0A000', '28000']);

/** One valid frontend message of any whitelisted kind. */
const validFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.string({ maxLength: 40 }).map((sql) => query(sql.replaceAll('\0', ' '))),
  fc.string({ maxLength: 20 }).map((sql) => parse(sql.replaceAll('\0', ' '))),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }).map((params) => bind(params)),
  fc.constant(execute()),
  fc.constant(sync()),
  fc.constant(flush()),
  fc.uint8Array({ maxLength: 64 }).map((data) => message('d', data)),
  fc.constantFrom('c', 'X', 'H', 'S').map((type) => message(type)),
  fc.uint8Array({ maxLength: 32 }).map((data) => message('p', data)),
);

const parameterText = fc.string({ minLength: 1, maxLength: 12 }).map((text) => text.replaceAll('\0', '_'));

/** Valid frames after startup. */
export const frameList = fc.array(validFrame, { maxLength: 12 });

/** A valid session: optional encryption requests, a StartupMessage, then valid frames. */
export const validSession: fc.Arbitrary<{ startup: Uint8Array; frames: Uint8Array[] }> = fc.record({
  startup: fc
    .tuple(fc.boolean(), fc.boolean(), parameterText, parameterText, fc.constantFrom(0, 2, 3))
    .map(([gss, ssl, user, database, minor]) =>
      concat(
        ...(gss ? [gssencRequest()] : []),
        ...(ssl ? [sslRequest()] : []),
        startupMessage({ user, database }, 3, minor),
      ),
    ),
  frames: frameList,
});

const HOSTILE_LENGTHS = [0, 1, 2, 3, 5, 10001, 65536, 0x7fffffff, 0x80000000, 0xffffffff];

/** A change to the frames after startup, at a frame chosen by a fraction of their count. */
const frameMutations = [
  fc.record({
    kind: fc.constant('flip-type' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    kind: fc.constant('set-length' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    value: fc.constantFrom(...HOSTILE_LENGTHS),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
] as const;
export const frameMutation = () => fc.oneof(...frameMutations);
const mutation = fc.oneof(
  ...frameMutations,
  fc.record({ kind: fc.constant('startup-length' as const), value: fc.constantFrom(...HOSTILE_LENGTHS) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;
export type FrameMutation = Exclude<Mutation, { kind: 'startup-length' }>;

/** Applies a mutation to the frames after startup (or to the startup length). */
export function mutate(session: { startup: Uint8Array; frames: Uint8Array[] }, change: Mutation | null): Uint8Array {
  if (change === null) return concat(session.startup, ...session.frames);
  if (change.kind === 'startup-length') {
    const startup = session.startup.slice();
    startup.set(new Bytes().int32(change.value).build(), 0);
    return concat(startup, ...session.frames);
  }
  const frames = session.frames.map((f) => f.slice());
  if (frames.length === 0) return concat(session.startup);
  const index = Math.min(frames.length - 1, Math.floor(change.at * frames.length));
  const frame = frames[index]!;
  switch (change.kind) {
    case 'flip-type':
      frame[0] = change.value;
      break;
    case 'set-length':
      frame.set(new Bytes().int32(change.value).build(), 1);
      break;
    case 'truncate':
      frames[index] = frame.subarray(0, Math.floor(change.at * frame.length));
      frames.splice(index + 1);
      break;
    case 'insert':
      frames.splice(index, 0, change.bytes);
      break;
  }
  return concat(session.startup, ...frames);
}

/** Split points for a stream, as fractions, turned into chunks. */
export function split(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const offsets = [...new Set(cuts.map((c) => Math.floor(c * stream.length)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const offset of [...offsets, stream.length]) {
    chunks.push(stream.subarray(from, offset));
    from = offset;
  }
  return chunks;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

/** Runs the framer over the chunks and checks it against the reference model. Throws on any difference. */
export function checkAgainstReference(stream: Uint8Array, chunks: Uint8Array[]): void {
  const framer = new FrontendFramer({ maxMessageLength: 0x3fffffff - 1 });
  const events: FrontendEvent[] = [];
  for (const chunk of chunks) events.push(...framer.push(chunk));
  const forwarded = concat(...events.flatMap((e) => (e.type === 'frames' ? [e.bytes] : [])));
  const refusals = events.filter((e) => e.type === 'refused');
  const expected = referenceVerdict(stream);

  if (refusals.length > 1) throw new Error('refused twice');
  if (refusals.length === 1 && events.at(-1) !== refusals[0]) throw new Error('events after the refusal');
  const refused = refusals[0]?.type === 'refused' ? refusals[0].error : undefined;
  if (refused && !SQLSTATES.has(refused.sqlState)) throw new Error(`refused with ${refused.sqlState}`);
  if ((refused?.sqlState ?? null) !== expected.refusedWith) {
    throw new Error(
      `refused with ${refused?.sqlState ?? 'nothing'}, the model says ${expected.refusedWith ?? 'nothing'}`,
    );
  }
  if (events.some((e) => e.type === 'startup') !== expected.started) throw new Error('startup verdict differs');
  if (Buffer.compare(Buffer.from(forwarded), Buffer.from(expected.forwarded)) !== 0) {
    throw new Error(`forwarded ${forwarded.length} bytes, the model allows ${expected.forwarded.length}`);
  }
}

/** Mutated valid sessions, split anywhere: the framer agrees with the model. */
export const mutatedSessions = fc.property(
  validSession,
  fc.option(mutation, { nil: null }),
  cuts,
  (session, change, at) => {
    const stream = mutate(session, change);
    checkAgainstReference(stream, split(stream, at));
  },
);

/** Random bytes, split anywhere: the framer never throws and agrees with the model. */
export const randomBytes = fc.property(fc.uint8Array({ maxLength: 300 }), cuts, (stream, at) => {
  checkAgainstReference(stream, split(stream, at));
});

/** Random bytes after a valid startup: the normal-phase rules alone. */
export const randomFrames = fc.property(validSession, fc.uint8Array({ maxLength: 300 }), cuts, (session, tail, at) => {
  const stream = concat(session.startup, tail);
  checkAgainstReference(stream, split(stream, at));
});
