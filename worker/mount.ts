import type { Env } from './config.js';
import { BRIDGE_PATH } from './paths.js';
import { handleUpgrade } from './upgrade.js';

export interface BridgeHandlerOptions {
  /** The path that upgrades to a bridged session (default `/v1`); the handler answers 404 elsewhere. */
  readonly path?: string;
  /**
   * Settings given in code, by the names of README.md's settings table (`PG_HOST`, `JWT_SECRET`,
   * a `HYPERDRIVE` binding, …). Each wins over the Worker's binding of the same name; the rest are
   * read from the `env` the handler is called with.
   */
  readonly settings?: Env;
}

/** A fetch handler that answers the bridge's path; call it from your own Worker's fetch. */
export type BridgeHandler = (request: Request, env?: object) => Promise<Response>;

/**
 * The bridge inside a Worker of your own: a handler for one path, with its settings passed in
 * code, read from the Worker's env, or both. The settings are validated on each upgrade, as the
 * ready Worker's are, and parsed once per env.
 */
export function bridgeHandler(options: BridgeHandlerOptions = {}): BridgeHandler {
  const path = options.path ?? BRIDGE_PATH;
  const settings = options.settings ?? {};
  // loadConfig caches per env object: give it the same merged object for the same env.
  const merged = new WeakMap<object, Env>();
  const withoutEnv: Env = { ...settings };
  return (request, env) => {
    let effective = withoutEnv;
    if (env !== undefined) {
      effective = merged.get(env) ?? { ...(env as Env), ...settings };
      merged.set(env, effective);
    }
    return handleUpgrade(request, effective, { path });
  };
}
