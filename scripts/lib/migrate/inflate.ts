// A large MLflow database for the benchmark and the kill test: the real fixture plus N generated metrics
// (spread over its runs, full-precision doubles, some NaN and ±inf stored the way MLflow stores them).
import Database from "./sqlite.ts";
import { copyFileSync } from "node:fs";

export function inflate(fixture: string, out: string, metrics: number): { rows: number } {
  copyFileSync(fixture, out);
  const db = new Database(out);
  try {
    db.pragma("journal_mode = off");
    db.pragma("synchronous = off");
    db.exec(`create temp table r as select row_number() over (order by run_uuid) - 1 as n, run_uuid from runs`);
    const runs = db.prepare("select count(*) from temp.r").pluck().get() as number;
    db.prepare(
      `with recursive c(i) as (select 0 union all select i + 1 from c where i < ? - 1)
       insert into metrics (key, value, timestamp, run_uuid, step, is_nan)
       select 'bench_metric_' || (i % 25),
              case when i % 10007 = 0 then 0
                   when i % 10009 = 0 then 1.7976931348623157e308
                   when i % 10037 = 0 then -1.7976931348623157e308
                   else (i * 2654435761 % 1000003) / 997.0 + i * 1e-9 end,
              1700000000000 + i * 7, r.run_uuid, i / (25 * cast(? as integer)), case when i % 10007 = 0 then 1 else 0 end
         from c join temp.r r on r.n = i % cast(? as integer)`,
    ).run(metrics, runs, runs);
    const rows = (db.prepare(`select sum(n) from (select count(*) as n from metrics union all select count(*) from runs union all select count(*) from params union all select count(*) from tags)`).pluck().get() as number) ?? 0;
    return { rows };
  } finally {
    db.close();
  }
}
