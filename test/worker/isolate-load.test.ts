import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../worker/config.js';
import { IsolateLoad } from '../../worker/isolate-load.js';

const config = loadConfig({
  PG_HOST: 'db.internal',
  MAX_SESSIONS: '2',
  MAX_LOGINS_IN_PROGRESS: '1',
  ISOLATE_BUDGET_BYTES: String(1024 * 1024),
});

describe('IsolateLoad', () => {
  it('admits sessions up to MAX_SESSIONS, then refuses with 53300 until one leaves', () => {
    const load = new IsolateLoad();
    expect(load.admit(config)).toBeNull();
    expect(load.admit(config)).toBeNull();
    expect(load.admit(config)).toMatchObject({ code: 'TOO_MANY_SESSIONS', sqlState: '53300' });
    load.leave();
    expect(load.admit(config)).toBeNull();
  });

  it("gives a session a window of half what the others leave of the budget, between the floor and the deployment's window", () => {
    const MiB = 1024 * 1024;
    const defaults = loadConfig({ PG_HOST: 'db.internal' }); // 48 MiB budget, 24 MiB window
    const drained = 100 * MiB; // clients that proved they received this much: no slow start left
    const load = new IsolateLoad();
    expect(load.windowToClient(defaults, 0, drained)).toBe(24 * MiB); // alone
    load.hold(24 * MiB); // one session holds its window
    expect(load.windowToClient(defaults, 24 * MiB, drained)).toBe(24 * MiB); // its own bytes do not count
    expect(load.windowToClient(defaults, 0, drained)).toBe(12 * MiB); // a second one
    load.hold(12 * MiB);
    expect(load.windowToClient(defaults, 0, drained)).toBe(8 * MiB); // a third: the floor
    expect(load.windowToClient(defaults, 12 * MiB, drained)).toBe(12 * MiB);
    load.hold(30 * MiB); // over the budget: the budget, not the window, holds sessions back
    expect(load.windowToClient(defaults, 0, drained)).toBe(8 * MiB);
    // A deployment's smaller window is the window, however idle the isolate.
    const small = loadConfig({ PG_HOST: 'db.internal', WINDOW_TO_CLIENT_BYTES: String(MiB) });
    expect(new IsolateLoad().windowToClient(small, 0, drained)).toBe(MiB);
    // A small budget leaves every session the floor.
    expect(new IsolateLoad().windowToClient(config, 0, drained)).toBe(8 * MiB);
  });

  it('grows a window past the floor only by what the client acknowledged, as TCP does', () => {
    const MiB = 1024 * 1024;
    const defaults = loadConfig({ PG_HOST: 'db.internal' });
    const load = new IsolateLoad();
    expect(load.windowToClient(defaults, 0, 0)).toBe(8 * MiB); // a client that never echoes
    expect(load.windowToClient(defaults, 0, 6 * MiB)).toBe(14 * MiB);
    expect(load.windowToClient(defaults, 0, 16 * MiB)).toBe(24 * MiB);
  });

  it('is over budget while the held bytes reach it, and still admits sessions then', () => {
    const load = new IsolateLoad();
    load.hold(1024 * 1024);
    expect(load.overBudget(config)).toBe(true);
    expect(load.admit(config)).toBeNull();
    load.hold(-1);
    expect(load.overBudget(config)).toBe(false);
  });

  it('hands login slots out first come, first served', () => {
    const load = new IsolateLoad();
    const first = load.takeLoginSlot(config);
    const second = load.takeLoginSlot(config);
    const third = load.takeLoginSlot(config);
    expect([first.granted, second.granted, third.granted]).toEqual([true, false, false]);
    expect(load.loginsWaiting).toBe(2);
    load.endLogin();
    expect([second.granted, third.granted]).toEqual([true, false]);
    load.cancelLoginWait(third);
    expect(load.loginsWaiting).toBe(0);
    load.endLogin();
    expect(load.loginsInProgress).toBe(0);
    expect(load.takeLoginSlot(config).granted).toBe(true);
  });

  it('frees the slot of a session that gives up after being granted one', () => {
    const load = new IsolateLoad();
    load.takeLoginSlot(config);
    const waiting = load.takeLoginSlot(config);
    load.endLogin();
    expect(waiting.granted).toBe(true);
    load.cancelLoginWait(waiting);
    expect(load.loginsInProgress).toBe(0);
  });
});
