/**
 * The soak's attackers, in a thread of their own: their sending keeps one event loop busy, which
 * must not be the honest clients' (on a small machine it would be the bottleneck, not the bridge).
 * Every attacker starts again as soon as its run has ended, until the time is up.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ATTACKS, type AttackOutcome, type AttackTargets, type Login } from '../test/support/hostile.js';

export interface AttackerOrders {
  readonly targets: AttackTargets;
  readonly login: Login;
  readonly kinds: readonly string[];
  readonly perKind: number;
  readonly seconds: number;
}

export interface AttackerReport {
  /** Per attack kind, how its runs ended. */
  readonly attacks: Record<string, Record<string, number>>;
  /** The most bytes one attacker that was held back (never refused) received. */
  readonly heldReceivedMax: number;
}

async function attack(orders: AttackerOrders): Promise<AttackerReport> {
  const deadline = Date.now() + orders.seconds * 1000;
  const attacks: Record<string, Record<string, number>> = {};
  let heldReceivedMax = 0;
  const attackers = orders.kinds.flatMap((kind, k) => {
    const tally: Record<string, number> = (attacks[kind] = {});
    return Array.from({ length: orders.perKind }, async (_, i) => {
      // Each attacker from an address of its own, as a botnet's would be.
      const ip = `198.18.${k}.${i + 1}`;
      while (Date.now() < deadline) {
        let result: AttackOutcome;
        try {
          result = await ATTACKS[kind]!(orders.targets, orders.login, { ip });
        } catch {
          result = { endedBy: 'client error', received: 0 };
        }
        tally[result.endedBy] = (tally[result.endedBy] ?? 0) + 1;
        if (result.endedBy === 'held') heldReceivedMax = Math.max(heldReceivedMax, result.received);
      }
    });
  });
  await Promise.all(attackers);
  return { attacks, heldReceivedMax };
}

if (parentPort) parentPort.postMessage(await attack(workerData as AttackerOrders));
