// Settings for building a key or index after the bulk load, in the migration's transaction (SET LOCAL), shared with the
// benchmark's floor (floor.ts) so both build with the same memory and workers.
import type pg from "pg";

/** SET LOCAL statements to run before building an index on `table` (schema-qualified, quoted). */
export async function indexBuildSettings(_client: pg.Client, _table: string): Promise<string[]> {
  // PostgreSQL's memory for the index builds (not this process'; shared by the parallel workers of a btree build).
  // More is not faster here: sorting in many cache-sized runs keeps up with one big in-memory sort. Measured on
  // MLflow's three metrics indexes over 5M rows (fast cluster, 2 cores, 2 parallel workers): 256MB 24.3 s,
  // 128MB 15-19 s, 64MB 15.8-16.6 s, 16MB 16.4 s. Again on the production-like cluster (issue 12; 2M rows, 223 MB
  // table, loadavg 11 on the shared 2 cores), two rounds each: 64MB/2 workers 13.3 and 10.9 s, 128MB/2 13.1, 11.4,
  // 256MB/2 14.3, 12.9, 512MB/2 13.3, 11.3, 128MB/1 12.6, 14.6, 128MB/0 16.4, 15.6: no size beat 64MB beyond the noise
  // and fewer workers were slower, so the server's own max_parallel_maintenance_workers (default 2) is kept.
  return ["set local maintenance_work_mem = '64MB'"];
}

/** Builds the keys, then the indexes, each with indexBuildSettings first (migrate and the benchmark's floor alike). */
export async function buildKeysAndIndexes(client: pg.Client, keys: { table: string; create: string }[], indexes: { table: string; create: string }[], quoteTable: (table: string) => string): Promise<void> {
  for (const item of [...keys, ...indexes]) {
    for (const s of await indexBuildSettings(client, quoteTable(item.table))) await client.query(s);
    await client.query(item.create);
  }
}
