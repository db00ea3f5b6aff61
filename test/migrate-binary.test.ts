// The binary COPY path (scripts/lib/migrate/binary.ts) and the checksum of a big table (copy.ts) against a real
// PostgreSQL: an integer too big for its `integer` column fails in one line with nothing written; a WAL-mode source
// (where the checksum worker must not run: it could read another snapshot) hashes in the main thread and verifies.
import Database from "../scripts/lib/migrate/sqlite.ts";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../scripts/lib/cli.ts";
import { PARALLEL_ROWS } from "../scripts/lib/migrate/copy.ts";
import { inflate } from "../scripts/lib/migrate/inflate.ts";
import { migrate } from "../scripts/lib/migrate/migrate.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const INT_MAX = 2 ** 31 - 1;

/** Row count of every table of the target's public schema. */
async function targetCounts(server: TestPostgres, db: string): Promise<Record<string, number>> {
  const tables = await server.query<{ t: string }>(`select relname as t from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1`, [], db);
  const sql = tables.rows.map((r) => `select '${r.t}' as t, count(*)::int as n from public."${r.t}"`).join(" union all ");
  const counts = await server.query<{ t: string; n: number }>(sql, [], db);
  return Object.fromEntries(counts.rows.map((r) => [r.t, r.n]));
}

/** Row count of every table of a SQLite database. */
function sourceCounts(db: Database.Database): Record<string, number> {
  const tables = db.prepare(`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by 1`).pluck().all() as string[];
  return Object.fromEntries(tables.map((t) => [t, db.prepare(`select count(*) from "${t}"`).pluck().get() as number]));
}

describe.skipIf(!initdbPath)("migrate: binary COPY path", () => {
  let server: TestPostgres;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    server = await startPostgres();
    tmp = makeTempDir("migrate-binary");
  });
  afterAll(async () => {
    await server?.stop();
    tmp?.cleanup();
  });

  it("an integer out of range for its column: one line naming table.column, exit 1, target unchanged", async () => {
    // scorer_versions (varchar, integer, text, bigint) goes in binary; scorer_version is `integer` in PostgreSQL.
    const source = join(tmp.dir, "overflow.db");
    copyFileSync(FIXTURE_DB, source);
    const db = new Database(source);
    const changed = db.prepare(`update scorer_versions set scorer_version = ? where rowid = (select max(rowid) from scorer_versions)`).run(BigInt(INT_MAX) + 1n);
    db.close();
    expect(changed.changes).toBe(1);

    await createMlflowDatabase(server, "overflow");
    const before = await targetCounts(server, "overflow");
    expect(before.experiments).toBe(1);
    const error = await migrate({ from: source, to: server.url("overflow") }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^scorer_versions\\.scorer_version: ${INT_MAX + 1} is out of range for type integer`));
    expect(message).not.toContain("\n");
    expect(await targetCounts(server, "overflow")).toEqual(before);

    // The same as users run it: one line on stderr, exit 1, no stack trace; the password comes from a file.
    const pwfile = join(tmp.dir, "pw");
    writeFileSync(pwfile, server.password + "\n", { mode: 0o600 });
    const to = `postgresql://${server.user}@127.0.0.1:${server.port}/overflow`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/migrate.ts", "--from", source, "--to", to, "--password-file", pwfile, "--yes", "--no-artifacts"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(1);
    // Progress lines go to stderr too: the error is the last line, alone, with no stack trace.
    const lines = r.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^migrate: scorer_versions\.scorer_version: 2147483648 is out of range for type integer/);
    expect(lines.filter((l) => /^\s+at |Error:/.test(l))).toEqual([]);
    expect(lines.filter((l) => l.includes("out of range"))).toHaveLength(1);
    expect(await targetCounts(server, "overflow")).toEqual(before);
  });

  it("a WAL-mode source with a big table (checksum in the main thread): every table verified, row counts as the source", async () => {
    const source = join(tmp.dir, "wal.db");
    inflate(FIXTURE_DB, source, PARALLEL_ROWS);
    // WAL, with more rows still in the -wal file: a connection that stays open keeps SQLite from checkpointing them.
    const writer = new Database(source);
    try {
      expect(writer.pragma("journal_mode = wal", { simple: true })).toBe("wal");
      writer.pragma("wal_autocheckpoint = 0");
      writer.exec(
        `insert into metrics (key, value, timestamp, run_uuid, step, is_nan)
         select 'wal_metric', value + 0.5, timestamp + 1, run_uuid, step, is_nan from metrics where key = 'bench_metric_0' limit 1000`,
      );
      const want = sourceCounts(writer);
      expect(want.metrics).toBeGreaterThanOrEqual(PARALLEL_ROWS + 1000);

      await createMlflowDatabase(server, "wal");
      const result = await migrate({ from: source, to: server.url("wal") });
      expect(result.committed).toBe(true);
      expect(String(writer.pragma("journal_mode", { simple: true }))).toBe("wal");

      const verified = Object.fromEntries(result.verified.map((v) => [v.table, v]));
      const got = await targetCounts(server, "wal");
      for (const [table, rows] of Object.entries(want)) {
        if (table === "alembic_version") continue;
        // Tables empty in the source are skipped (the target keeps what MLflow's first start wrote there, if anything).
        if (rows === 0) continue;
        expect(verified[table]?.ok, table).toBe(true);
        expect(verified[table].sourceRows, table).toBe(rows);
        expect(got[table], table).toBe(rows);
      }
      expect(result.verified.every((v) => v.ok)).toBe(true);
      expect(verified.metrics.sourceChecksum).not.toBe("0");
      const wal = await server.query<{ n: number }>(`select count(*)::int as n from metrics where key = 'wal_metric'`, [], "wal");
      expect(wal.rows[0].n).toBe(1000);
    } finally {
      writer.close();
    }
  });
});
