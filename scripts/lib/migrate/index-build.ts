// Settings for building a key or index after the bulk load, in the migration's transaction (SET LOCAL), shared with the
// benchmark's floor (floor.ts) so both build with the same memory and workers.
import type pg from "pg";

/** SET LOCAL statements to run before building an index on `table` (schema-qualified, quoted). */
export async function indexBuildSettings(_client: pg.Client, _table: string): Promise<string[]> {
  // PostgreSQL's memory for the index builds (not this process'; shared by the parallel workers of a btree build).
  // More is slower here: sorting in many cache-sized runs beats one huge in-memory sort. Measured on MLflow's three
  // metrics indexes over 5M rows (2 cores, 2 parallel workers): 256MB 24.3 s, 128MB 15-19 s, 64MB 15.8-16.6 s,
  // 16MB 16.4 s.
  return ["set local maintenance_work_mem = '64MB'"];
}
