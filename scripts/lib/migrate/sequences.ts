// After the copy every sequence (serial or identity) continues after the copied maximum, so MLflow's next
// create_experiment gets a fresh id (pgloader's data-only recipe leaves experiments_experiment_id_seq at 1).
import type pg from "pg";
import { quoteIdent, type Catalog } from "./target.ts";

export interface SequenceReset {
  sequence: string;
  table: string;
  column: string;
  /** The value the next nextval() returns. */
  next: string;
}

export async function resetSequences(client: pg.Client, catalog: Catalog, tables: Set<string>): Promise<SequenceReset[]> {
  const done: SequenceReset[] = [];
  for (const s of catalog.sequences) {
    if (!tables.has(s.table)) continue;
    const table = catalog.tables.get(s.table)!;
    const r = await client.query<{ next: string }>(
      `with m as (select max(${quoteIdent(s.column)})::bigint as v from ${table.qualified}),
            q as (select seqmin, seqincrement from pg_sequence where seqrelid = $1::regclass)
       select (case when m.v is null or m.v < q.seqmin then setval($1::regclass, q.seqmin, false)
                    else setval($1::regclass, m.v, true) + q.seqincrement end)::text as next
         from m, q`,
      [s.sequence],
    );
    done.push({ ...s, next: r.rows[0].next });
  }
  return done;
}
