// A large MLflow database for the benchmark and the kill test: the real fixture plus N generated metrics
// (full-precision doubles, some NaN and ±inf stored the way MLflow stores them), in one of three shapes:
//  - "spread" (the tests'): over the fixture's 14 runs, 25 keys;
//  - "long": 10 new runs x 5 keys x N/50 steps (long training histories);
//  - "wide": N/1000 new runs of 10 keys x 100 steps, 20 params and 10 tags each (many short runs).
import Database from "./sqlite.ts";
import { copyFileSync } from "node:fs";

export type Shape = "spread" | "long" | "wide";

/** The value and NaN flag of generated metric i (the same formula in every shape). */
const VALUE = `case when i % 10007 = 0 then 0
                   when i % 10009 = 0 then 1.7976931348623157e308
                   when i % 10037 = 0 then -1.7976931348623157e308
                   else (i * 2654435761 % 1000003) / 997.0 + i * 1e-9 end`;
const IS_NAN = `case when i % 10007 = 0 then 1 else 0 end`;
const SERIES = `with recursive c(i) as (select 0 union all select i + 1 from c where i < ? - 1)`;

/** Adds `n` runs (copies of the fixture's first run, ids b000…), spread over its experiments. */
function addRuns(db: Database.Database, n: number) {
  db.exec(`create temp table e as select row_number() over (order by experiment_id) - 1 as n, experiment_id from experiments`);
  db.prepare(
    `${SERIES}
     insert into runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time)
     select printf('b%031x', i), 'bench-' || i, r.source_type, r.source_name, r.entry_point_name, r.user_id, 'FINISHED', 1700000000000 + i, 1700000100000 + i,
            r.source_version, 'active', replace(r.artifact_uri, r.run_uuid, printf('b%031x', i)),
            e.experiment_id, null
       from c join temp.e e on e.n = i % (select count(*) from temp.e), (select * from runs order by run_uuid limit 1) r`,
  ).run(n);
}

export function inflate(fixture: string, out: string, metrics: number, shape: Shape = "spread"): { rows: number } {
  copyFileSync(fixture, out);
  const db = new Database(out);
  try {
    db.pragma("journal_mode = off");
    db.pragma("synchronous = off");
    if (shape !== "spread") {
      const perRun = shape === "long" ? Math.ceil(metrics / 10) : 1000;
      const keys = shape === "long" ? 5 : 10;
      const runs = Math.ceil(metrics / perRun);
      addRuns(db, runs);
      // In the order a training loop logs: run after run, every key at each step.
      db.prepare(
        `${SERIES}
         insert into metrics (key, value, timestamp, run_uuid, step, is_nan)
         select 'bench_metric_' || (i % ${keys}), ${VALUE}, 1700000000000 + i * 7, printf('b%031x', i / ${perRun}), (i % ${perRun}) / ${keys}, ${IS_NAN} from c`,
      ).run(metrics);
      if (shape === "wide") {
        db.prepare(`${SERIES} insert into params (key, value, run_uuid) select 'param_' || (i % 20), 'value-' || (i * 7919 % 100003), printf('b%031x', i / 20) from c`).run(runs * 20);
        db.prepare(`${SERIES} insert into tags (key, value, run_uuid) select 'tag_' || (i % 10), 'tag value ' || (i * 104729 % 1000003), printf('b%031x', i / 10) from c`).run(runs * 10);
      }
      return { rows: countRows(db) };
    }
    db.exec(`create temp table r as select row_number() over (order by run_uuid) - 1 as n, run_uuid from runs`);
    const runs = db.prepare("select count(*) from temp.r").pluck().get() as number;
    db.prepare(
      `with recursive c(i) as (select 0 union all select i + 1 from c where i < ? - 1)
       insert into metrics (key, value, timestamp, run_uuid, step, is_nan)
       select 'bench_metric_' || (i % 25), ${VALUE},
              1700000000000 + i * 7, r.run_uuid, i / (25 * cast(? as integer)), ${IS_NAN}
         from c join temp.r r on r.n = i % cast(? as integer)`,
    ).run(metrics, runs, runs);
    return { rows: countRows(db) };
  } finally {
    db.close();
  }
}

/** Rows of the big tables (metrics, runs, params, tags). */
function countRows(db: Database.Database): number {
  return (db.prepare(`select sum(n) from (select count(*) as n from metrics union all select count(*) from runs union all select count(*) from params union all select count(*) from tags)`).pluck().get() as number) ?? 0;
}
