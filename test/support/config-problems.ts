import { ConfigError, loadConfig, type Env } from '../../worker/config.js';

/** The problems loadConfig lists for `env`; empty when it loads. */
export function configProblems(env: Env): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}
