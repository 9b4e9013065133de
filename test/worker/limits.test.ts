import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../worker/config.js';
import { SessionLimits } from '../../worker/limits.js';
import type { BridgeError } from '../../worker/protocol/errors.js';

const IDLE = 0x49; // I
const IN_TRANSACTION = 0x54; // T

const config = loadConfig({
  PG_HOST: 'db.internal',
  STARTUP_TIMEOUT_MS: '1000',
  LOGIN_TIMEOUT_MS: '2000',
  IDLE_TIMEOUT_MS: '5000',
  IDLE_IN_TRANSACTION_TIMEOUT_MS: '3000',
  MAX_SESSION_MS: '60000',
});

/** A SessionLimits whose ends are recorded by code. */
function limits(tokenExpiresAtMs: number | null = null) {
  const ended: string[] = [];
  const l = new SessionLimits(config, tokenExpiresAtMs, (error: BridgeError) => ended.push(error.code));
  return { limits: l, ended };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('SessionLimits', () => {
  it('ends a session whose startup packet never completes', () => {
    const { ended } = limits();
    vi.advanceTimersByTime(1000);
    expect(ended).toEqual(['INCOMPLETE_STARTUP']);
  });

  it('gives the login its own clock, stopped by the first ReadyForQuery', () => {
    const { limits: l, ended } = limits();
    vi.advanceTimersByTime(900);
    l.startupDone();
    vi.advanceTimersByTime(1999);
    expect(ended).toEqual([]);
    l.readyForQuery(IDLE);
    vi.advanceTimersByTime(4000);
    expect(ended).toEqual([]);
    const slow = limits();
    slow.limits.startupDone();
    vi.advanceTimersByTime(2000);
    expect(slow.ended).toEqual(['LOGIN_TIMEOUT']);
  });

  it('counts idleness from ReadyForQuery, not from the last byte: a running statement is not idle', () => {
    const { limits: l, ended } = limits();
    l.startupDone();
    l.readyForQuery(IDLE);
    vi.advanceTimersByTime(4000);
    l.clientSent(1); // a long statement
    vi.advanceTimersByTime(20_000);
    expect(ended).toEqual([]);
    expect(l.busy).toBe(true);
    l.readyForQuery(IDLE);
    expect(l.busy).toBe(false);
    vi.advanceTimersByTime(4999);
    expect(ended).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(ended).toEqual(['IDLE_TIMEOUT']);
  });

  it('stays busy until every pipelined Query or Sync has had its ReadyForQuery', () => {
    const { limits: l, ended } = limits();
    l.startupDone();
    l.readyForQuery(IDLE);
    l.clientSent(2);
    l.readyForQuery(IDLE);
    vi.advanceTimersByTime(10_000);
    expect(ended).toEqual([]);
    l.readyForQuery(IDLE);
    vi.advanceTimersByTime(5000);
    expect(ended).toEqual(['IDLE_TIMEOUT']);
  });

  it('does not count frames without a sync point as finished work, nor as idleness', () => {
    const { limits: l, ended } = limits();
    l.startupDone();
    l.readyForQuery(IDLE);
    l.clientSent(0); // Parse and Bind, no Sync yet
    vi.advanceTimersByTime(30_000);
    expect(ended).toEqual([]);
  });

  it('counts frames sent without a Sync as a statement that may run, and may commit', () => {
    const { limits: l } = limits();
    l.startupDone();
    expect(l.statementRunning).toBe(false); // logging in: nothing can commit
    l.readyForQuery(IN_TRANSACTION);
    expect(l.statementRunning).toBe(false);
    l.clientSent(0); // Parse, Bind, Execute ("COMMIT"), no Sync
    expect(l.statementRunning).toBe(true);
    l.clientSent(1); // the Sync
    l.readyForQuery(IDLE);
    expect(l.statementRunning).toBe(false);
  });

  it('uses the idle-in-transaction limit after ReadyForQuery T or E', () => {
    const { limits: l, ended } = limits();
    l.startupDone();
    l.readyForQuery(IN_TRANSACTION);
    vi.advanceTimersByTime(3000);
    expect(ended).toEqual(['IDLE_IN_TRANSACTION_TIMEOUT']);
  });

  it("ends the session at its maximum length and at its token's expiry", () => {
    expect(
      (() => {
        const { ended } = limits();
        vi.advanceTimersByTime(60_000);
        return ended;
      })(),
    ).toContain('SESSION_TOO_LONG');
    const { ended } = limits(Date.now() + 1500);
    vi.advanceTimersByTime(1499);
    expect(ended).not.toContain('TOKEN_EXPIRED');
    vi.advanceTimersByTime(1);
    expect(ended).toContain('TOKEN_EXPIRED');
  });

  it('stops every clock when the session ends', () => {
    const { limits: l, ended } = limits(Date.now() + 1000);
    l.stop();
    vi.advanceTimersByTime(100_000);
    expect(ended).toEqual([]);
  });
});
