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
