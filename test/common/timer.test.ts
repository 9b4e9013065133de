import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timer } from '../../common/timer.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('timer', () => {
  it('is running from start until it fires, is cancelled, or is disposed', () => {
    const fired: number[] = [];
    const t = timer(1000, () => fired.push(Date.now()));
    expect(t.running).toBe(false);
    t.start();
    expect(t.running).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveLength(1);
    expect(t.running).toBe(false);
    t.start();
    t.cancel();
    expect(t.running).toBe(false);
    vi.advanceTimersByTime(2000);
    expect(fired).toHaveLength(1);
    t.start();
    t.dispose();
    expect(t.running).toBe(false);
  });

  it('never runs with a limit of 0', () => {
    const t = timer(0, () => {});
    t.start();
    expect(t.running).toBe(false);
  });
});
