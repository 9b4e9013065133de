import type { Env } from './config.js';
import { handleUpgrade } from './upgrade.js';

export { bridgeHandler, type BridgeHandler, type BridgeHandlerOptions } from './mount.js';
export type { Env, HyperdriveBinding } from './config.js';

/** The bridge as a Worker of its own: every request is an upgrade to `/v1` or refused. */
export default {
  fetch: (request: Request, env: Env): Promise<Response> => handleUpgrade(request, env),
} satisfies ExportedHandler<Env>;
