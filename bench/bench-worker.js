import { handleUpgrade } from '../worker/upgrade.ts';
import { blindRelay } from './blind-relay.js';

/** The bridge on `/v1` and, in the same Worker, the blind relay on `/blind`: one workerd, one isolate. */
export default {
  fetch: (request, env) => (new URL(request.url).pathname === '/blind' ? blindRelay(env) : handleUpgrade(request, env)),
};
