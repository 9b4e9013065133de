import { afterEach, describe, expect, it, vi } from 'vitest';
import { WINDOW_TO_CLIENT_BYTES } from '../../common/flow-control.js';
import { ClientChannel, MAX_UNMARKED_MS, RELAY_BUFFER_BYTES, REST_MARK_MS } from '../../worker/client-channel.js';

/** Records what the channel sends, as a WebSocket's peer would receive it. */
function recorder() {
  const sent: Array<Uint8Array | string> = [];
  const ws = { send: (data: Uint8Array | string) => sent.push(data), close: () => {} } as unknown as WebSocket;
  return { ws, sent };
}

describe('ClientChannel', () => {
  it('counts every binary byte it sends, one-byte answers included, so echoes refer to what was sent', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true);
    channel.sendNow(Uint8Array.of(0x4e)); // the N to an SSLRequest
    channel.add(new Uint8Array(100));
    channel.flush();
    expect(channel.bytesSent).toBe(101);
    expect(channel.toClient!.unacknowledged).toBe(101);
    expect(sent.map((m) => (typeof m === 'string' ? m[0] : m.length))).toEqual([1, 100]);
  });

  it('marks every quarter window and stops taking more at the window until an echo', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true);
    while (channel.room > 0) {
      channel.add(new Uint8Array(RELAY_BUFFER_BYTES));
      channel.flush();
    }
    expect(channel.heldBytes).toBe(WINDOW_TO_CLIENT_BYTES);
    const marks = sent.filter((m): m is string => typeof m === 'string');
    expect(marks).toHaveLength(4);
    expect(channel.toClient!.echoed(marks[3]!.slice(1))).toBe(true);
    expect(channel.room).toBe(WINDOW_TO_CLIENT_BYTES);
    expect(channel.heldBytes).toBe(0);
  });

  it('before the relay waits: no mark for a full window, whose mark is out; one covering all over the budget', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true);
    const marks = () => sent.filter((m): m is string => typeof m === 'string');
    while (channel.room > 0) channel.add(new Uint8Array(RELAY_BUFFER_BYTES - 1000));
    channel.flush();
    const atFull = marks().length;
    channel.markBeforeWaiting(false);
    expect(marks()).toHaveLength(atFull);
    // Its last quarter-window mark's echo reopens the window.
    expect(channel.toClient!.echoed(marks().at(-1)!.slice(1))).toBe(true);
    expect(channel.room).toBeGreaterThan(0);
    // Full again, and the isolate over its budget: a mark for everything sent, so one echo frees all.
    while (channel.room > 0) channel.add(new Uint8Array(RELAY_BUFFER_BYTES - 1000));
    channel.flush();
    const atFullAgain = marks().length;
    channel.markBeforeWaiting(true);
    expect(marks()).toHaveLength(atFullAgain + 1);
    expect(channel.toClient!.echoed(marks().at(-1)!.slice(1))).toBe(true);
    expect(channel.heldBytes).toBe(0);
  });

  // A window of 64 MiB marks 16 MiB apart; then other sessions take their share and it shrinks to 8.
  it.each([
    ['under unmarked bytes: no mark is out, so no echo would ever reopen it', 10, 0],
    ['below its unmarked bytes: 9 MiB after the mark at 16, past the window once that is echoed', 25, 1],
  ])('before the relay waits on a window that shrank %s: a mark', (_, mib, marksOut) => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true, 64 * 1024 * 1024);
    const marks = () => sent.filter((m): m is string => typeof m === 'string');
    for (let i = 0; i < mib * 16; i++) channel.add(new Uint8Array(RELAY_BUFFER_BYTES));
    expect(marks()).toHaveLength(marksOut);
    channel.setWindow(8 * 1024 * 1024);
    expect(channel.room).toBe(0);
    channel.markBeforeWaiting(false);
    expect(marks()).toHaveLength(marksOut + 1);
    expect(channel.toClient!.echoed(marks().at(-1)!.slice(1))).toBe(true);
    expect(channel.room).toBe(8 * 1024 * 1024);
  });

  it('marks at rest what no mark covers yet, once it is more than the guaranteed share', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true);
    const marks = () => sent.filter((m) => typeof m === 'string').length;
    channel.add(new Uint8Array(1000)); // a small answer: no mark, no echo to wait for
    channel.flushAtRest();
    expect(marks()).toBe(0);
    channel.add(new Uint8Array(700_000)); // a 700 KB result, far from the quarter-window mark
    channel.flushAtRest();
    expect(marks()).toBe(1);
    // Its echo covers everything: an idle session holds nothing against the isolate's budget.
    const id = (sent.filter((m) => typeof m === 'string').at(-1) as string).slice(1);
    expect(channel.toClient!.echoed(id)).toBe(true);
    expect(channel.heldBytes).toBe(0);
  });

  describe('bytes no mark covers', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    const setup = () => {
      vi.useFakeTimers();
      const { ws, sent } = recorder();
      const channel = new ClientChannel(ws, true);
      const marks = () => sent.filter((m): m is string => typeof m === 'string');
      return { channel, marks };
    };

    it('get a mark once nothing more went out for a while: a pause mid-stream costs the client no echo', () => {
      const { channel, marks } = setup();
      channel.add(new Uint8Array(300_000));
      channel.flush(); // the reads ran dry: what was gathered goes, no mark yet
      vi.advanceTimersByTime(REST_MARK_MS / 2);
      channel.add(new Uint8Array(300_000)); // the stream goes on
      channel.flush();
      vi.advanceTimersByTime(REST_MARK_MS);
      expect(marks()).toHaveLength(0);
      vi.advanceTimersByTime(REST_MARK_MS);
      // Nothing more for a while: the stream rests, and one mark covers all of it.
      expect(marks()).toHaveLength(1);
      expect(channel.toClient!.echoed(marks()[0]!.slice(1))).toBe(true);
      expect(channel.heldBytes).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('in a long stream echoed as it goes, get only the quarter-window marks: their clock starts at each', () => {
      const { channel, marks } = setup();
      const quarter = channel.toClient!.window / 4;
      let echoed = 0;
      for (let ms = 0; ms < 3 * MAX_UNMARKED_MS; ms += REST_MARK_MS / 2) {
        channel.add(new Uint8Array(quarter / 8)); // a quarter window every 80 ms
        channel.flush();
        for (const mark of marks().slice(echoed)) channel.toClient!.echoed(mark.slice(1));
        echoed = marks().length;
        vi.advanceTimersByTime(REST_MARK_MS / 2);
      }
      expect(marks()).toHaveLength(Math.floor(channel.bytesSent / quarter));
      vi.advanceTimersByTime(2 * REST_MARK_MS);
      expect(marks()).toHaveLength(Math.floor(channel.bytesSent / quarter) + 1); // and one where it rests
    });

    it('get no mark of their own while the window is full and an echo is due, and are watched again once the relay resumes', () => {
      const { channel, marks } = setup();
      channel.setWindow(1_000_000); // marks every 250,000 bytes
      channel.add(new Uint8Array(1_000_000)); // full: the marks at 250,000 … 750,000 are out, 250,000 bytes after them
      channel.flush();
      expect(channel.room).toBe(0);
      const out = marks().length;
      vi.advanceTimersByTime(10 * REST_MARK_MS);
      expect(marks()).toHaveLength(out);
      expect(channel.toClient!.echoed(marks().at(-1)!.slice(1))).toBe(true); // the window reopens
      channel.resumed(); // and PostgreSQL has nothing more just now
      vi.advanceTimersByTime(2 * REST_MARK_MS);
      expect(marks()).toHaveLength(out + 1);
      expect(channel.toClient!.echoed(marks().at(-1)!.slice(1))).toBe(true);
      expect(channel.heldBytes).toBe(0);
    });

    it('get a mark though the last of them went out as full messages, with nothing left to flush', () => {
      const { channel, marks } = setup();
      channel.add(new Uint8Array(4 * RELAY_BUFFER_BYTES)); // four full messages, sent as they fill
      expect(channel.isEmpty).toBe(true);
      vi.advanceTimersByTime(2 * REST_MARK_MS);
      expect(marks()).toHaveLength(1);
      expect(channel.toClient!.echoed(marks()[0]!.slice(1))).toBe(true);
      expect(channel.heldBytes).toBe(0);
    });

    it('get a mark once the oldest went out MAX_UNMARKED_MS ago, in a stream that trickles without resting', () => {
      const { channel, marks } = setup();
      const step = REST_MARK_MS / 2;
      let elapsed = 0;
      while (marks().length === 0 && elapsed < 10 * MAX_UNMARKED_MS) {
        channel.add(new Uint8Array(70_000)); // far less than a quarter window in all
        channel.flush();
        vi.advanceTimersByTime(step);
        elapsed += step;
      }
      expect(marks()).toHaveLength(1);
      expect(elapsed).toBeGreaterThanOrEqual(MAX_UNMARKED_MS);
      expect(elapsed).toBeLessThanOrEqual(MAX_UNMARKED_MS + 2 * REST_MARK_MS);
    });

    it('get no mark below the guaranteed share, nor once the session closed', () => {
      const { channel, marks } = setup();
      channel.add(new Uint8Array(1000));
      channel.flush();
      vi.advanceTimersByTime(MAX_UNMARKED_MS);
      expect(marks()).toHaveLength(0);
      channel.add(new Uint8Array(300_000));
      channel.flush();
      channel.close(1000, 'done');
      vi.advanceTimersByTime(MAX_UNMARKED_MS);
      expect(marks()).toHaveLength(0);
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  it('without flow control sends as bytes come, with nothing to count against', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, false);
    for (let i = 0; i < 100; i++) channel.sendNow(new Uint8Array(RELAY_BUFFER_BYTES));
    expect(channel.room).toBe(Infinity);
    expect(sent.every((m) => typeof m !== 'string')).toBe(true);
  });

  it('sends nothing once closed', () => {
    const { ws, sent } = recorder();
    const channel = new ClientChannel(ws, true);
    channel.close(1000, 'done');
    channel.sendNow(new Uint8Array(10));
    expect(sent).toEqual([]);
  });
});
