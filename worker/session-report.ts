import type { MetricsDataset } from './config.js';
import { sessionDataPoint, type SessionSummary } from './metrics.js';

/** What one session did, logged once when it ends. Never passwords, tokens or query text. */
export interface SessionRecord {
  readonly startedAt: number;
  user: string | null;
  database: string | null;
  readonly subject: string | null;
  bytesToServer: number;
}

/** One structured line per session, and a data point when an Analytics Engine dataset is bound. */
export function reportSession(
  summary: SessionSummary & { subject: string | null; peakHeldBytes: number },
  log: (line: string) => void,
  metrics: MetricsDataset | undefined,
): void {
  log(JSON.stringify({ event: 'pgwire-bridge.session', ...summary }));
  if (!metrics) return;
  // Counting must never stop a session from closing.
  try {
    metrics.writeDataPoint(sessionDataPoint(summary));
  } catch (error) {
    log(`pgwire-bridge: metrics not written: ${String(error)}`);
  }
}
