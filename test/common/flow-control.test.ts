import { describe, expect, it } from 'vitest';
import {
  countingMarkIds,
  FlowReceiver,
  FlowSender,
  MAX_OUTSTANDING_MARKS,
  randomMarkId,
} from '../../common/flow-control.js';

const WINDOW = 1000;

describe('FlowSender', () => {
  it('with a message window, marks every quarter of it and stops at it until an echo, however few the bytes', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds(), 8);
    const marks = Array.from({ length: 8 }, () => sender.count(1));
    expect(marks).toEqual([null, '0', null, '1', null, '2', null, '3']);
    expect(sender.unacknowledged).toBe(8);
    expect(sender.room).toBe(0);
    expect(sender.echoed('1')).toBe(true); // four messages echoed
    expect(sender.room).toBe(WINDOW - 4);
  });

  it('marks every quarter window and never lets more than the window go unechoed', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    expect(sender.room).toBe(1000);
    expect(sender.count(100)).toBeNull();
    expect(sender.count(150)).toBe('0'); // 250 sent: a quarter window
    expect(sender.count(750)).toBe('1'); // a quarter window since the last mark: the window is full
    expect(sender.room).toBe(0);
    expect(sender.unacknowledged).toBe(1000);
    expect(sender.echoed('0')).toBe(true);
    expect(sender.room).toBe(250);
    expect(sender.echoed('1')).toBe(true);
    expect(sender.room).toBe(1000);
  });

  it('adds no mark when the window fills: one is always out, and its echo reopens the window', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    expect(sender.count(100)).toBeNull();
    expect(sender.count(200)).toBe('0'); // 300 sent
    expect(sender.count(650)).toBe('1'); // 950 sent
    expect(sender.count(50)).toBeNull(); // 1000 sent: the window is full, mark '1' is out
    expect(sender.room).toBe(0);
    expect(sender.echoed('1')).toBe(true);
    expect(sender.room).toBe(950);
  });

  it('resized, keeps to the new window and marks a quarter of it apart; bytes sent past a smaller one wait for echoes', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    sender.resize(4 * WINDOW);
    expect(sender.count(900)).toBeNull(); // a quarter of the old window, not of the new one
    expect(sender.count(100)).toBe('0'); // 1000: a quarter of the new window
    expect(sender.count(2500)).toBe('1');
    expect(sender.room).toBe(500);
    sender.resize(WINDOW); // other sessions took their share
    expect(sender.room).toBe(0);
    expect(sender.awaitingEcho).toBe(true);
    expect(sender.echoed('0')).toBe(true);
    expect(sender.room).toBe(0); // 2500 still unechoed, past the window of 1000
    expect(sender.echoed('1')).toBe(true);
    expect(sender.awaitingEcho).toBe(false);
    expect(sender.room).toBe(WINDOW);
    expect(sender.count(250)).toBe('2'); // a quarter of the window it has now
  });

  it('marks everything before it rests, once', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    sender.count(10);
    expect(sender.markAll()).toBe('0');
    expect(sender.markAll()).toBeNull();
    expect(sender.echoed('0')).toBe(true);
    expect(sender.unacknowledged).toBe(0);
  });

  it('refuses echoes of marks it never sent, or already echoed', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    sender.count(300);
    expect(sender.echoed('7')).toBe(false);
    expect(sender.echoed('0')).toBe(true);
    expect(sender.echoed('0')).toBe(false);
    expect(sender.unacknowledged).toBe(0);
  });

  it('takes an echo of a later mark as covering every earlier one', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    sender.count(250);
    sender.count(250);
    sender.count(250);
    expect(sender.echoed('2')).toBe(true);
    expect(sender.unacknowledged).toBe(0);
    expect(sender.echoed('0')).toBe(false);
  });

  it('uses random ids a receiver cannot guess', () => {
    const ids = new Set(Array.from({ length: 1000 }, randomMarkId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[0-9A-Za-z_-]{12}$/);
  });
});

describe('FlowReceiver', () => {
  it('echoes a mark once every byte before it is consumed', () => {
    const receiver = new FlowReceiver(WINDOW);
    expect(receiver.receive(300)).toBe(true);
    expect(receiver.mark('a')).toBe(true);
    receiver.consume(299);
    expect(receiver.takeEcho()).toBeNull();
    receiver.consume(1);
    expect(receiver.takeEcho()).toBe('a');
    expect(receiver.takeEcho()).toBeNull();
  });

  it('echoes only the last of several consumed marks', () => {
    const receiver = new FlowReceiver(WINDOW);
    for (const id of ['a', 'b', 'c']) {
      receiver.receive(100);
      receiver.mark(id);
    }
    receiver.consume(250);
    expect(receiver.takeEcho()).toBe('b');
    receiver.consume(50);
    expect(receiver.takeEcho()).toBe('c');
  });

  it('refuses a sender past its window, counted from what this side echoed', () => {
    const receiver = new FlowReceiver(WINDOW);
    expect(receiver.receive(1000)).toBe(true);
    expect(receiver.receive(1)).toBe(false);
    const honest = new FlowReceiver(WINDOW);
    honest.receive(1000);
    honest.mark('x');
    honest.consume(1000);
    expect(honest.takeEcho()).toBe('x');
    expect(honest.receive(1000)).toBe(true);
    expect(honest.receive(1)).toBe(false);
  });

  it('says how many bytes a mark arriving now would cover: none before any, none right after one', () => {
    const receiver = new FlowReceiver(WINDOW);
    expect(receiver.unmarked).toBe(0);
    receiver.receive(300);
    expect(receiver.unmarked).toBe(300);
    receiver.mark('a');
    expect(receiver.unmarked).toBe(0);
    receiver.receive(20);
    expect(receiver.unmarked).toBe(20);
    receiver.mark('b');
    receiver.consume(320);
    expect(receiver.takeEcho()).toBe('b');
    // Echoed, the newest mark still counts: the next one must cover bytes after it.
    expect(receiver.unmarked).toBe(0);
    receiver.receive(1);
    expect(receiver.unmarked).toBe(1);
  });

  it('with a least echo, echoes a consumed mark only once it frees that much, and counts consumed marks as done', () => {
    const receiver = new FlowReceiver(WINDOW, { minEcho: 100 });
    const echoes: Array<string | null> = [];
    // More marks than the cap, ten bytes apart, each consumed at once: none stays outstanding.
    for (let i = 0; i < 4 * MAX_OUTSTANDING_MARKS; i++) {
      receiver.receive(10);
      expect(receiver.mark(`m${i}`)).toBe(true);
      receiver.consume(10);
      echoes.push(receiver.takeEcho());
    }
    // At 100 and 200 bytes consumed: the marks after the 10th and the 20th message.
    expect(echoes.filter((id) => id !== null)).toEqual(['m9', 'm19']);
    // The rest (40 bytes) waits for a mark that frees enough, and holds back nothing else.
    expect(receiver.unacknowledged).toBe(4 * MAX_OUTSTANDING_MARKS * 10 - 200);
  });

  it('with a message window, refuses the message past it, keepalives counted, and echoes per quarter of messages', () => {
    const receiver = new FlowReceiver(WINDOW, { minEcho: WINDOW, minEchoMessages: 2, messageWindow: 8 });
    expect(receiver.receive(1)).toBe(true);
    expect(receiver.mark('a')).toBe(true);
    receiver.consume(1);
    expect(receiver.takeEcho()).toBeNull(); // one message freed, two needed
    expect(receiver.receive(1)).toBe(true);
    expect(receiver.mark('b')).toBe(true);
    receiver.consume(1);
    expect(receiver.takeEcho()).toBe('b');
    // Eight more past the echo, one of them a keepalive, and the ninth is refused.
    for (let i = 0; i < 7; i++) expect(receiver.receive(0)).toBe(true);
    expect(receiver.keepalive()).toBe(true);
    expect(receiver.keepalive()).toBe(false);
  });

  it('refuses more outstanding marks than an honest sender can have', () => {
    const receiver = new FlowReceiver(WINDOW);
    for (let i = 0; i < MAX_OUTSTANDING_MARKS; i++) expect(receiver.mark(String(i))).toBe(true);
    expect(receiver.mark('one-too-many')).toBe(false);
  });

  it('keeps the newest mark from a trusted sender past the cap, so the echo that covers everything still comes', () => {
    const sender = new FlowSender(WINDOW, countingMarkIds());
    const receiver = new FlowReceiver(WINDOW);
    // A paused client collects marks: more than the cap, the last one from the sender about to wait.
    for (let i = 0; i < MAX_OUTSTANDING_MARKS + 2; i++) {
      receiver.receive(10);
      receiver.markLatest(sender.count(10) ?? sender.markAll()!);
    }
    expect(sender.markAll()).toBeNull();
    receiver.consume(10 * (MAX_OUTSTANDING_MARKS + 2));
    const echo = receiver.takeEcho();
    expect(echo).not.toBeNull();
    expect(sender.echoed(echo!)).toBe(true);
    expect(sender.unacknowledged).toBe(0);
  });
});

describe('a sender and a receiver together', () => {
  it('move any amount through any consumption pattern without the receiver ever refusing', () => {
    for (let seed = 1; seed <= 200; seed++) {
      let state = seed;
      const random = (n: number) => {
        state = (state * 48271) % 2147483647;
        return state % n;
      };
      const sender = new FlowSender(WINDOW, countingMarkIds());
      const receiver = new FlowReceiver(WINDOW);
      let toSend = 20_000;
      let unconsumed = 0;
      const marksInFlight: string[] = [];
      let stuck = 0;
      while (toSend > 0 || unconsumed > 0) {
        const size = Math.min(toSend, sender.room, 1 + random(400));
        if (size > 0) {
          toSend -= size;
          expect(receiver.receive(size)).toBe(true);
          unconsumed += size;
          const mark = sender.count(size);
          if (mark) marksInFlight.push(mark);
        }
        // A full window sends no mark: the echo of one already out must reopen it.
        stuck = sender.room === 0 && unconsumed === 0 ? stuck + 1 : 0;
        expect(stuck).toBeLessThan(2);
        for (const mark of marksInFlight.splice(0)) expect(receiver.mark(mark)).toBe(true);
        const consumed = Math.min(unconsumed, random(500));
        unconsumed -= consumed;
        receiver.consume(consumed);
        const echo = receiver.takeEcho();
        if (echo) expect(sender.echoed(echo)).toBe(true);
      }
      expect(sender.unacknowledged).toBeLessThanOrEqual(WINDOW);
    }
  });
});
