// `npm run migrate` as users run it (a child process), incl. a SIGKILL in the middle of the copy.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inflate } from "../scripts/lib/migrate/inflate.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--import", "tsx", "scripts/migrate.ts", ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 });

describe("migrate CLI: usage", () => {
  it("--help, and one line for a usage error or a missing file", () => {
    const help = cli(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: npm run migrate -- --from FILE/);
    const none = cli([]);
    expect(none.status).toBe(2);
    expect(none.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^migrate: --from FILE is required/)]);
    const missing = cli(["--from", "/nonexistent/mlflow.db", "--to", "postgresql://u@127.0.0.1:1/db", "--yes"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^migrate: source database not found: \/nonexistent\/mlflow.db/)]);
  });
});

describe.skipIf(!initdbPath)("migrate CLI against PostgreSQL", () => {
  let server: TestPostgres;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    server = await startPostgres();
    tmp = makeTempDir("migrate-cli");
  });
  afterAll(async () => {
    await server?.stop();
    tmp?.cleanup();
  });

  it("migrates with --json, the password coming from a file (never the command line)", async () => {
    await createMlflowDatabase(server, "cli");
    const pwfile = join(tmp.dir, "pw");
    (await import("node:fs")).writeFileSync(pwfile, server.password + "\n", { mode: 0o600 });
    const to = `postgresql://${server.user}@127.0.0.1:${server.port}/cli`;
    const dry = cli(["--from", FIXTURE_DB, "--to", to, "--password-file", pwfile, "--dry-run", "--no-artifacts"]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/Dry run: nothing was written/);
    const r = cli(["--from", FIXTURE_DB, "--to", to, "--password-file", pwfile, "--yes", "--json", "--no-artifacts"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.committed).toBe(true);
    expect(out.verified.every((v: { ok: boolean }) => v.ok)).toBe(true);
    expect(r.stderr).not.toContain(server.password);
    const again = cli(["--from", FIXTURE_DB, "--to", to, "--password-file", pwfile, "--yes", "--no-artifacts"]);
    expect(again.status).toBe(1);
    expect(again.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^migrate: target is not empty/)]);
  });

  it("a SIGKILL in the middle of the copy leaves the target exactly as it was", async () => {
    const big = join(tmp.dir, "big.db");
    const METRICS = 600_000;
    inflate(FIXTURE_DB, big, METRICS);
    await createMlflowDatabase(server, "killed");
    await createMlflowDatabase(server, "pristine");
    const state = async (db: string) => {
      const defs = await server.query<{ d: string }>(
        `select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) as d from pg_constraint where connamespace = 'public'::regnamespace
         union all select pg_get_indexdef(indexrelid) from pg_index where indrelid in (select oid from pg_class where relnamespace = 'public'::regnamespace)
         union all select 'rows ' || relname || ' ' || n_live_tup from pg_stat_user_tables
         order by 1`,
        [],
        db,
      );
      const data = await server.query<{ d: string }>(
        `select (select count(*) from metrics) || '/' || (select count(*) from runs) || '/' || (select string_agg(experiment_id || name, ',') from experiments)
                || '/' || (select last_value || ' ' || is_called from experiments_experiment_id_seq) as d`,
        [],
        db,
      );
      return [...defs.rows.map((r) => r.d).filter((d) => !d.startsWith("rows ")), data.rows[0].d];
    };
    const before = await state("killed");
    expect(before).toEqual(await state("pristine"));

    const child = spawn(process.execPath, ["--import", "tsx", "scripts/migrate.ts", "--from", big, "--to", server.url("killed"), "--yes", "--no-artifacts"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // Wait until PostgreSQL reports the COPY into metrics under way, then kill the migration without warning.
    let copied = 0;
    // One session on another database (a session on the target would make the migration refuse to start).
    const watcher = new pg.Client({ connectionString: server.url("postgres") });
    await watcher.connect();
    try {
      while (child.exitCode === null && copied < 30_000) {
        const p = await watcher.query<{ n: string }>(`select coalesce(max(tuples_processed), 0)::text as n from pg_stat_progress_copy where datname = 'killed'`);
        copied = Number(p.rows[0].n);
      }
    } finally {
      await watcher.end();
    }
    expect(child.exitCode, output).toBe(null);
    expect(copied).toBeGreaterThanOrEqual(30_000);
    child.kill("SIGKILL");
    await exited;
    expect(child.signalCode).toBe("SIGKILL");
    // The server notices the dead client and rolls back; wait until its session is gone.
    for (let i = 0; i < 200; i++) {
      const s = await server.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = 'mlflow-stack-migrate'`);
      if (s.rows[0].n === 0) break;
      await sleep(50);
    }
    expect(await state("killed")).toEqual(before);

    // And the same target then migrates fine.
    const r = cli(["--from", big, "--to", server.url("killed"), "--yes", "--no-artifacts", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const n = await server.query<{ n: number }>(`select count(*)::int as n from metrics`, [], "killed");
    expect(n.rows[0].n).toBe(METRICS + 899);
  }, 180_000);
});
