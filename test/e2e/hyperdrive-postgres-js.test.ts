// postgres.js's end-to-end cases again, the bridge reaching PostgreSQL through a local Hyperdrive binding.
import { bridgeTarget } from '../support/clients.js';

bridgeTarget.viaHyperdrive = true;
await import('./postgres-js.test.js');
