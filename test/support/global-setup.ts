import type { TestProject } from 'vitest/node';
import { startPostgres, type PostgresInfo } from '../../dev/postgres.js';

/** One real PostgreSQL (SCRAM, TLS) for the whole run; every suite starts its own bridge. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const db = await startPostgres();
  const { host, port, user, password, database, caPem } = db;
  project.provide('postgres', { host, port, user, password, database, caPem });
  return db.stop;
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: PostgresInfo;
  }
}
