// The migration core against a real PostgreSQL (initdb in a temp dir) and the real MLflow fixture database.
import Database from "../scripts/lib/migrate/sqlite.ts";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../scripts/lib/migrate/migrate.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { makeTempDir } from "./support/tmp.ts";

const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const manifest = JSON.parse(readFileSync(join(FIXTURES, "mlflow-small.manifest.json"), "utf8"));
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** PostgreSQL's text output of every value (no client-side parsing), rows sorted. */
async function targetRows(server: TestPostgres, db: string, table: string, columns: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: server.url(db), types: { getTypeParser: () => (v: string) => v } });
  await client.connect();
  try {
    const r = await client.query({ text: `select ${columns.map((c) => `"${c}"`).join(", ")} from public."${table}"`, rowMode: "array" });
    return r.rows.map((row) => JSON.stringify(row)).sort();
  } finally {
    await client.end();
  }
}

/** What PostgreSQL should print for each source value, derived here independently of the migrate code. */
function expectedRows(sqlite: Database.Database, table: string, columns: { name: string; type: string }[]): string[] {
  const rows = sqlite.prepare(`select ${columns.map((c) => `"${c.name}"`).join(", ")} from "${table}"`).raw(true).safeIntegers(true).all() as unknown[][];
  return rows
    .map((row) =>
      JSON.stringify(
        row.map((v, i) => {
          if (v === null) return null;
          const type = columns[i].type;
          if (type === "boolean") return v ? "t" : "f";
          if (type === "bytea") return "\\x" + (v as Buffer).toString("hex");
          if (type === "double precision") {
            const x = Number(v);
            return Number.isNaN(x) ? "NaN" : x === Infinity ? "Infinity" : x === -Infinity ? "-Infinity" : x; // compared numerically below
          }
          return String(v);
        }),
      ),
    )
    .sort();
}

describe.skipIf(!initdbPath)("migrate (core)", () => {
  let server: TestPostgres;
  let tmp: { dir: string; cleanup: () => void };
  let source: string;
  beforeAll(async () => {
    server = await startPostgres();
    tmp = makeTempDir("migrate");
    source = join(tmp.dir, "mlflow.db");
    copyFileSync(FIXTURE_DB, source);
  });
  afterAll(async () => {
    await server?.stop();
    tmp?.cleanup();
  });

  it("copies every table of the fixture, verified, and leaves the source untouched", async () => {
    await createMlflowDatabase(server, "full");
    const before = sha256(source);
    const result = await migrate({ from: source, to: server.url("full"), keepWebhooksActive: true }); // compared value for value below (deactivation: migrate-layouts.test.ts)
    expect(result.committed).toBe(true);
    expect(sha256(source)).toBe(before);
    // Every non-empty table of the fixture was copied and verified.
    const copied = Object.fromEntries(result.verified.map((v) => [v.table, v.targetRows]));
    for (const [table, rows] of Object.entries(manifest.row_counts as Record<string, number>)) {
      if (table === "alembic_version") continue;
      expect(copied[table], table).toBe(rows);
    }
    expect(result.verified.every((v) => v.ok)).toBe(true);

    // Row by row, every table, every shared column: PostgreSQL's own text output against the source values.
    const sqlite = new Database(source, { readonly: true });
    const cols = await server.query<{ table: string; column: string; type: string }>(
      `select c.relname as table, a.attname as column, format_type(a.atttypid, null) as type
         from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' order by c.relname, a.attnum`,
      [],
      "full",
    );
    const byTable = new Map<string, { name: string; type: string }[]>();
    for (const r of cols.rows) (byTable.get(r.table) ?? byTable.set(r.table, []).get(r.table)!).push({ name: r.column, type: r.type });
    let compared = 0;
    for (const [table, columns] of byTable) {
      if (table === "alembic_version") continue;
      const want = expectedRows(sqlite, table, columns);
      const got = await targetRows(server, "full", table, columns.map((c) => c.name));
      // Floats: PostgreSQL prints the shortest exact text; compare as numbers (exactly).
      const norm = (rows: string[]) => rows.map((r) => JSON.stringify((JSON.parse(r) as unknown[]).map((v, i) => (columns[i].type === "double precision" && v !== null && !["NaN", "Infinity", "-Infinity"].includes(v as string) ? Number(v) : v)))).sort();
      expect(norm(got), table).toEqual(norm(want));
      compared += got.length;
    }
    sqlite.close();
    expect(compared).toBe(Object.entries(manifest.row_counts as Record<string, number>).reduce((a, [t, n]) => a + (t === "alembic_version" ? 0 : n), 0));
  });

  it("keeps NaN and ±inf metrics, long and unicode params, and 64-bit integers exactly", async () => {
    const nan = await server.query(`select count(*)::int as n from metrics where is_nan and value = 0`, [], "full");
    expect(nan.rows[0].n).toBeGreaterThan(0);
    const inf = await server.query<{ v: number }>(`select distinct value as v from metrics where abs(value) = 1.7976931348623157e308`, [], "full");
    expect(inf.rows.map((r) => r.v).sort()).toEqual([-1.7976931348623157e308, 1.7976931348623157e308]);
    const sqlite = new Database(source, { readonly: true });
    const long = sqlite.prepare(`select key, value from params where length(value) >= 6000`).all() as { key: string; value: string }[];
    const uni = sqlite.prepare(`select key, value from params where value glob '*[^ -~]*'`).all() as { key: string; value: string }[];
    const spans = sqlite.prepare(`select max(start_time_unix_nano) as v from spans`).safeIntegers(true).get() as { v: bigint };
    sqlite.close();
    expect(long.length).toBeGreaterThan(0);
    expect(uni.length).toBeGreaterThan(0);
    for (const p of [...long, ...uni]) {
      const r = await server.query<{ value: string }>(`select value from params where key = $1`, [p.key], "full");
      expect(r.rows.map((x) => x.value)).toContain(p.value);
    }
    expect(spans.v > 2n ** 53n).toBe(true);
    const r = await server.query<{ v: string }>(`select max(start_time_unix_nano)::text as v from spans`, [], "full");
    expect(r.rows[0].v).toBe(spans.v.toString());
  });

  it("resets sequences: MLflow can create an experiment right away", async () => {
    const r = await server.query<{ id: number }>(`insert into experiments (name) values ('after-migration') returning experiment_id as id`, [], "full");
    const sqlite = new Database(source, { readonly: true });
    const max = sqlite.prepare(`select max(experiment_id) from experiments`).pluck().get() as number;
    sqlite.close();
    expect(max).toBeGreaterThan(0);
    expect(r.rows[0].id).toBe(max + 1);
    await server.query(`delete from experiments where name = 'after-migration'`, [], "full");
  });

  it("restores every key, index and foreign key of MLflow's schema", async () => {
    await createMlflowDatabase(server, "pristine");
    const defs = (db: string) =>
      server
        .query<{ d: string }>(
          `select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) as d from pg_constraint where connamespace = 'public'::regnamespace
           union all select indexrelid::regclass::text || ' ' || pg_get_indexdef(indexrelid) from pg_index where indrelid in (select oid from pg_class where relnamespace = 'public'::regnamespace)
           order by 1`,
          [],
          db,
        )
        .then((r) => r.rows.map((x) => x.d));
    const want = await defs("pristine");
    expect(want.length).toBeGreaterThan(100);
    expect(await defs("full")).toEqual(want);
  });

  it("text and bytea hash as PostgreSQL's hashtextextended, byte for byte (ASCII, multi-byte UTF-8, every tail length)", async () => {
    const { hashBytes } = await import("../scripts/lib/migrate/rowhash.ts");
    const { chooseRowHash } = await import("../scripts/lib/migrate/verify.ts");
    const samples = ["", "x".repeat(1000), "ü€😀".repeat(100)];
    for (let n = 1; n <= 30; n++) samples.push("abcdé€😀0123456789\t\\".repeat(2).slice(0, n));
    const r = await server.query<{ h: string }>(`select hashtextextended(s, 0)::text as h from unnest($1::text[]) with ordinality as t(s, i) order by i`, [samples], "full");
    const out = new Int32Array(2);
    const ours = samples.map((s) => {
      const b = Buffer.from(s, "utf8");
      hashBytes(b, b.length, out);
      return (BigInt(out[0]) * 2n ** 32n + BigInt(out[1] >>> 0)).toString();
    });
    expect(ours).toEqual(r.rows.map((x) => x.h));
    const client = new pg.Client({ connectionString: server.url("full") });
    await client.connect();
    expect(await chooseRowHash(client)).toBe("record");
    await client.end();
  });

  it("the checksum notices a one-ulp change of a single float (both row hashes)", async () => {
    const { readCatalog } = await import("../scripts/lib/migrate/target.ts");
    const { targetChecksum } = await import("../scripts/lib/migrate/verify.ts");
    const client = new pg.Client({ connectionString: server.url("full") });
    await client.connect();
    try {
      const catalog = await readCatalog(client);
      const metrics = catalog.tables.get("metrics")!;
      for (const rowHash of ["record", "md5"] as const) {
        const before = await targetChecksum(client, metrics, metrics.columns, rowHash);
        await client.query("begin");
        const r = await client.query(`update metrics set value = value * (1 + 2.3e-16) where ctid = (select ctid from metrics where value > 1 and value < 1e300 limit 1)`);
        expect(r.rowCount).toBe(1);
        const after = await targetChecksum(client, metrics, metrics.columns, rowHash);
        await client.query("rollback");
        expect(after.rows).toBe(before.rows);
        expect(after.sum, rowHash).not.toBe(before.sum);
      }
    } finally {
      await client.end();
    }
  });

  it("the file reader, --sqlite-reader and worker threads (--workers) load a big table alike", async () => {
    const { inflate } = await import("../scripts/lib/migrate/inflate.ts");
    const big = join(tmp.dir, "big.db");
    inflate(FIXTURE_DB, big, 150_000);
    const tables = ["metrics", "params", "runs"];
    const stored: Record<string, string>[] = [];
    const sourceChecksums: string[][] = [];
    const variants = [{ name: "file" }, { name: "sqlite", sqliteReader: true }, { name: "lanes", workers: 3 }];
    for (const { name, ...opts } of variants) {
      await createMlflowDatabase(server, `w${name}`);
      const result = await migrate({ from: big, to: server.url(`w${name}`), ...opts });
      expect(result.committed).toBe(true);
      expect(result.verified.every((v) => v.ok)).toBe(true);
      const metrics = result.verified.find((v) => v.table === "metrics")!;
      expect(metrics.targetRows).toBe(150_000 + manifest.row_counts.metrics);
      expect(metrics.reader).toBe(name === "file" ? "file" : "sqlite");
      if (name === "file") expect(result.verified.filter((v) => v.reader === "sqlite").map((v) => v.table)).toEqual([]);
      sourceChecksums.push(result.verified.map((v) => `${v.table}:${v.sourceChecksum}`));
      // PostgreSQL's own md5 over every stored row, independent of the migrate code's checksums.
      const sums: Record<string, string> = {};
      for (const t of tables) sums[t] = (await server.query<{ h: string }>(`select md5(string_agg(x::text, ',' order by x::text)) as h from ${t} x`, [], `w${name}`)).rows[0].h;
      stored.push(sums);
    }
    expect(stored[1]).toEqual(stored[0]);
    expect(stored[2]).toEqual(stored[0]);
    expect(sourceChecksums[1]).toEqual(sourceChecksums[0]);
    expect(sourceChecksums[2]).toEqual(sourceChecksums[0]);
  });

  it("refuses a second run (target not empty) and writes nothing; --replace replaces", async () => {
    await expect(migrate({ from: source, to: server.url("full") })).rejects.toThrow(/target is not empty \(.*rows.*\).*--replace/);
    const result = await migrate({ from: source, to: server.url("full"), replace: true });
    expect(result.committed).toBe(true);
    expect(result.plan.targetUserData.length).toBeGreaterThan(0);
    const n = await server.query<{ n: number }>(`select count(*)::int as n from runs`, [], "full");
    expect(n.rows[0].n).toBe(manifest.row_counts.runs);
  });

  // Issue 8, finding 5: the README's order (up, smoke, migrate) met "target is not empty": smoke deletes what it made,
  // but MLflow keeps deleted experiments and runs until `mlflow gc`.
  it("treats a target holding only smoke's deleted leftovers as empty, and replaces them; anything else still counts", async () => {
    const smokeLeft = (db: string, { name = "smoke-20261201T072428-50506a", stage = "deleted" } = {}) =>
      server.query(
        `insert into experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
           values (7, '${name}', 'mlflow-artifacts:/7', '${stage}', 1, 2);
         insert into experiment_tags (key, value, experiment_id) values ('smoke', 'true', 7);
         insert into runs (run_uuid, name, experiment_id, lifecycle_stage, status, start_time, artifact_uri)
           values ('aaaabbbbccccddddeeeeffff00001111', 'smoke', 7, 'deleted', 'FAILED', 1, 'mlflow-artifacts:/7/aaaabbbbccccddddeeeeffff00001111/artifacts');
         insert into params (key, value, run_uuid) values ('p', '1', 'aaaabbbbccccddddeeeeffff00001111');
         insert into tags (key, value, run_uuid) values ('t', '1', 'aaaabbbbccccddddeeeeffff00001111');
         insert into metrics (key, value, timestamp, run_uuid, step, is_nan) values ('m', 1, 1, 'aaaabbbbccccddddeeeeffff00001111', 0, false);
         insert into latest_metrics (key, value, timestamp, step, is_nan, run_uuid) values ('m', 1, 1, 0, false, 'aaaabbbbccccddddeeeeffff00001111');`,
        [],
        db,
      );
    await createMlflowDatabase(server, "smoked");
    await smokeLeft("smoked");
    const result = await migrate({ from: source, to: server.url("smoked") });
    expect(result.committed).toBe(true);
    expect(result.plan).toMatchObject({ replace: false, targetUserData: [], smokeLeftovers: ["7"] });
    const left = await server.query<{ n: number }>(`select count(*)::int as n from runs where run_uuid = 'aaaabbbbccccddddeeeeffff00001111'`, [], "smoked");
    expect(left.rows[0].n).toBe(0);
    const runs = await server.query<{ n: number }>(`select count(*)::int as n from runs`, [], "smoked");
    expect(runs.rows[0].n).toBe(manifest.row_counts.runs);

    // Kept by --keep (active), or not smoke's: user data, refused as before.
    for (const [db, variant] of [["kept", { stage: "active" }], ["notsmoke", { name: "my-experiment" }]] as const) {
      await createMlflowDatabase(server, db);
      await smokeLeft(db, variant);
      await expect(migrate({ from: source, to: server.url(db) })).rejects.toThrow(/target is not empty \(experiments: 1 row/);
    }
  });

  it("--dry-run reports the plan and writes nothing", async () => {
    await createMlflowDatabase(server, "dry");
    const result = await migrate({ from: source, to: server.url("dry"), dryRun: true });
    expect(result.committed).toBe(false);
    expect(result.plan.tables.find((t) => t.table === "metrics")?.rows).toBe(manifest.row_counts.metrics);
    const n = await server.query<{ n: number }>(`select count(*)::int as n from experiments`, [], "dry");
    expect(n.rows[0].n).toBe(1);
  });

  it("refuses while another session (an MLflow server) is connected", async () => {
    await createMlflowDatabase(server, "busy");
    const other = new pg.Client({ connectionString: server.url("busy"), application_name: "mlflow-server" });
    await other.connect();
    try {
      await expect(migrate({ from: source, to: server.url("busy") })).rejects.toThrow(/other session.*mlflow-server.*docker compose stop mlflow/);
    } finally {
      await other.end();
    }
  });

  describe("bad input: one line, nothing written", () => {
    it("missing file, not SQLite, corrupt SQLite, not MLflow", async () => {
      await createMlflowDatabase(server, "bad");
      const to = server.url("bad");
      await expect(migrate({ from: join(tmp.dir, "nope.db"), to })).rejects.toThrow(/source database not found/);
      const text = join(tmp.dir, "text.db");
      writeFileSync(text, "hello, this is not a database\n".repeat(10));
      await expect(migrate({ from: text, to })).rejects.toThrow(/not a SQLite database/);
      const other = join(tmp.dir, "other.db");
      const o = new Database(other);
      o.exec("create table t (x int); insert into t values (1)");
      o.close();
      await expect(migrate({ from: other, to })).rejects.toThrow(/not MLflow's/);
      // Corrupt: keep the header, overwrite pages in the middle of the file.
      const corrupt = join(tmp.dir, "corrupt.db");
      const bytes = readFileSync(FIXTURE_DB);
      bytes.fill(0xa5, 4096, bytes.length - 4096);
      writeFileSync(corrupt, bytes);
      await expect(migrate({ from: corrupt, to })).rejects.toThrow(/corrupt|not a SQLite|malformed/);
      const n = await server.query<{ n: number }>(`select count(*)::int as n from experiments`, [], "bad");
      expect(n.rows[0].n).toBe(1);
    });

    it("target without schema, other revision, wrong password, unreachable", async () => {
      await server.createDatabase("noschema");
      await expect(migrate({ from: source, to: server.url("noschema") })).rejects.toThrow(/has no MLflow schema/);
      await createMlflowDatabase(server, "older");
      await server.query(`update alembic_version set version_num = '0584bdc529eb'`, [], "older");
      await expect(migrate({ from: source, to: server.url("older") })).rejects.toThrow(/schema revisions differ: source 7d34483879f0, target 0584bdc529eb/);
      const wrong = server.url("bad").replace(encodeURIComponent(server.password), "wrong");
      await expect(migrate({ from: source, to: wrong })).rejects.toThrow(/wrong password/);
      const closed = `postgresql://x:y@127.0.0.1:1/db`;
      await expect(migrate({ from: source, to: closed })).rejects.toThrow(/cannot reach PostgreSQL at postgresql:\/\/x:\*\*\*@127\.0\.0\.1:1\/db/);
    });
  });
});
