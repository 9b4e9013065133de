/**
 * `npm start`: a real PostgreSQL (embedded, SCRAM + TLS) and the bridge Worker in workerd, on this
 * machine, as `pgwire-bridge dev` runs them. PORT and PG_PORT change the ports, VERBOSE=1 shows
 * PostgreSQL's log.
 */
import { runDevEnvironment } from '../dev/environment.js';

process.exit(
  await runDevEnvironment({
    port: Number(process.env.PORT ?? 8787),
    pgPort: Number(process.env.PG_PORT ?? 54329),
    verbose: process.env.VERBOSE === '1',
    portSettings: { port: 'PORT', pgPort: 'PG_PORT' },
  }),
);
