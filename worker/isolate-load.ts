import { WINDOW_TO_CLIENT_FLOOR_BYTES } from '../common/flow-control.js';
import type { BridgeConfig } from './config.js';
import { BridgeError } from './protocol/errors.js';

/**
 * What all sessions of one isolate hold together. Cloudflare runs many sessions in one isolate
 * and kills the isolate, every session on it, when its 128 MB are exceeded; each session bounds
 * itself (flow-control windows), and this bounds how many there are and what they hold together.
 * No I/O: sessions report numbers and ask before they take more.
 */
export class IsolateLoad {
  private sessionCount = 0;
  private loginCount = 0;
  private held = 0;
  private readonly loginQueue: LoginTicket[] = [];

  get sessions(): number {
    return this.sessionCount;
  }

  get loginsInProgress(): number {
    return this.loginCount;
  }

  /** PostgreSQL bytes all sessions hold in the Worker right now, both directions. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * A new session, or why it is refused (before any TCP). Pair with `leave()`. Not refused for the
   * budget: over it, every session may take only its small share, so what a new one adds is bounded
   * as it is for the rest, while refusing would let a few sessions that hold their windows and
   * never read keep every new client out.
   */
  admit(config: BridgeConfig): BridgeError | null {
    if (this.sessionCount >= config.maxSessions) {
      return new BridgeError('TOO_MANY_SESSIONS', 'sorry, too many clients already');
    }
    this.sessionCount += 1;
    return null;
  }

  leave(): void {
    this.sessionCount -= 1;
  }

  /**
   * A session about to open TCP and log in takes a ticket: granted now when a slot is free, or
   * granted later, first come first served, when one frees. The ticket is only marked: a session
   * must not be woken by a call from another session's event, since workerd refuses I/O across
   * requests ("Cannot perform I/O on behalf of a different request"), so the waiter looks at its
   * ticket from its own timer. A session holding a granted ticket gives it back with `endLogin()`.
   */
  takeLoginSlot(config: BridgeConfig): LoginTicket {
    const ticket = { granted: this.loginCount < config.maxLoginsInProgress };
    if (ticket.granted) this.loginCount += 1;
    else this.loginQueue.push(ticket);
    return ticket;
  }

  /** A waiting session gave up: its ticket leaves the line (or, granted meanwhile, its slot frees). */
  cancelLoginWait(ticket: LoginTicket): void {
    if (ticket.granted) return this.endLogin();
    const index = this.loginQueue.indexOf(ticket);
    if (index !== -1) this.loginQueue.splice(index, 1);
  }

  /** The slot passes to the longest waiting session, or frees. */
  endLogin(): void {
    const next = this.loginQueue.shift();
    if (next) next.granted = true;
    else this.loginCount -= 1;
  }

  /** Sessions waiting for a login slot. */
  get loginsWaiting(): number {
    return this.loginQueue.length;
  }

  /** A session now holds `delta` bytes more (or fewer, when negative). */
  hold(delta: number): void {
    this.held += delta;
  }

  /**
   * The window toward its client a session may use now, holding `own` bytes, its client having
   * proven it received `acknowledged` bytes so far: half of what the other sessions leave of the
   * budget, between WINDOW_TO_CLIENT_FLOOR_BYTES and the deployment's window. A session alone
   * streams with the large window (fewer pauses for echoes, and fewer echoes); as others hold
   * theirs, windows shrink, so that a few sessions streaming at once share the budget before any
   * of them is held to its share by it. And a window grows past the floor only by what the client
   * has acknowledged over the session: a client that never reads keeps the floor, so sessions
   * opened to hold memory and let go (workerd frees what it queued for them only later) hold no
   * more than with a fixed floor-sized window unless they first read 16 MiB each.
   */
  windowToClient(config: BridgeConfig, own: number, acknowledged: number): number {
    const cap = config.windowToClientBytes;
    const floor = Math.min(WINDOW_TO_CLIENT_FLOOR_BYTES, cap);
    const othersLeave = config.isolateBudgetBytes - (this.held - own);
    return Math.max(floor, Math.min(cap, Math.floor(othersLeave / 2), floor + acknowledged));
  }

  /** True while the sessions together hold the whole budget: none may take more than its share. */
  overBudget(config: BridgeConfig): boolean {
    return this.held >= config.isolateBudgetBytes;
  }
}

/** A place in line for a login slot. */
export interface LoginTicket {
  granted: boolean;
}

/** How often a session waiting for the isolate (a login slot, budget) looks again, from its own timer. */
export const ISOLATE_POLL_MS = 20;

/** The isolate's one instance: module state lives as long as the isolate. */
export const isolateLoad = new IsolateLoad();

/**
 * A session may always hold this much toward the client, budget or not, so that sessions which
 * hold little are never starved by those holding much.
 */
export const GUARANTEED_SHARE_BYTES = 64 * 1024;
