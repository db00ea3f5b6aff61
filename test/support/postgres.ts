// A throwaway real PostgreSQL cluster for tests: initdb into a temp dir, a random TCP port on 127.0.0.1,
// the unix socket inside the temp dir, password auth for TCP, stopped and removed on teardown.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { POSTGRES_BIN_DIR, requireBinary } from "./binaries.ts";
import { freePort } from "./ports.ts";
import { startProcess, waitUntilListening, type RunningProcess } from "./processes.ts";
import { makeTempDir } from "./tmp.ts";

/** Path of initdb, or undefined (tests skip) — in CI a missing PostgreSQL fails. */
export const initdbPath = requireBinary("initdb", "postgresql-15", [POSTGRES_BIN_DIR]);

export interface TestPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  /** postgresql://user:password@127.0.0.1:port/<db> */
  url(db?: string): string;
  /** Runs SQL as the superuser in `db` (default "postgres"). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], db?: string): Promise<pg.QueryResult<R>>;
  /** Creates a database (dropping it first if it exists). */
  createDatabase(name: string): Promise<void>;
  proc: RunningProcess;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /**
   * Run with PostgreSQL's production defaults (fsync, full_page_writes, synchronous_commit on), for benchmarks; tests
   * keep the fast settings.
   */
  durable?: boolean;
  /** initdb --data-checksums (PostgreSQL 18's initdb default; 15's is off). */
  dataChecksums?: boolean;
  /** More server settings (`-c name=value`), applied after the fast/durable ones. */
  settings?: Record<string, string>;
  /** initdb --locale (default C.UTF-8; the postgres image initialises with en_US.utf8, its LANG). */
  locale?: string;
}

export async function startPostgres({ durable = false, dataChecksums = false, settings = {}, locale = "C.UTF-8" }: StartPostgresOptions = {}): Promise<TestPostgres> {
  if (!initdbPath) throw new Error("initdb not found (apt-get install postgresql-15)");
  const bin = join(initdbPath, "..");
  const { dir, cleanup } = makeTempDir("pg");
  const data = join(dir, "data");
  const user = "mlflow_test";
  const password = `pw-${Math.random().toString(36).slice(2)}'"\\ x`;
  const pwfile = join(dir, "pwfile");
  writeFileSync(pwfile, password + "\n", { mode: 0o600 });
  const asPostgres = process.getuid?.() === 0 ? ["postgres"] : [];
  // initdb and postgres refuse to run as root: run them as the `postgres` system user then.
  const run = (cmd: string, args: string[]) =>
    asPostgres.length
      ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { stdio: "pipe" })
      : execFileSync(cmd, args, { stdio: "pipe" });
  if (asPostgres.length) execFileSync("chown", ["-R", "postgres", dir]);
  run(join(bin, "initdb"), ["-D", data, "-U", user, `--pwfile=${pwfile}`, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", `--locale=${locale}`, ...(dataChecksums ? ["--data-checksums"] : [])]);
  const port = await freePort();
  const fast = durable ? [] : ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"];
  const extra = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const args = ["-D", data, "-p", String(port), "-h", "127.0.0.1", "-k", dir, ...fast, ...extra];
  const proc = asPostgres.length
    ? startProcess("runuser", ["-u", "postgres", "--", join(bin, "postgres"), ...args])
    : startProcess(join(bin, "postgres"), args);
  const stop = await waitUntilListening(proc, port, cleanup, 30_000);
  const url = (db = "postgres") => `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
  const query = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], db = "postgres") => {
    // The server accepts TCP a moment before it accepts logins ("the database system is starting up").
    for (let attempt = 0; ; attempt++) {
      const client = new pg.Client({ connectionString: url(db) });
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => {});
        if (attempt < 50 && /starting up/.test(String(error))) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw error;
      }
      try {
        return await client.query<R>(sql, params);
      } finally {
        await client.end();
      }
    }
  };
  await query("select 1");
  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    url,
    query,
    createDatabase: async (name) => {
      await query(`drop database if exists "${name}" with (force)`);
      await query(`create database "${name}"`);
    },
    proc,
    stop,
  };
}

export const FIXTURES = new URL("../fixtures/mlflow-3.11/", import.meta.url).pathname;

/**
 * Creates database `name` holding what MLflow's first start creates: the schema (the recorded pg_dump of a database
 * MLflow initialised), its revision in alembic_version, the `Default` experiment and the `default` workspace.
 */
export async function createMlflowDatabase(server: TestPostgres, name: string, { withDefaults = true } = {}): Promise<void> {
  const { readFileSync } = await import("node:fs");
  await server.createDatabase(name);
  // psql meta-commands (\restrict of newer pg_dump) are not SQL: drop them; everything else runs as one script.
  const sql = readFileSync(join(FIXTURES, "postgres-schema.sql"), "utf8")
    .split("\n")
    .filter((l) => !l.startsWith("\\"))
    .join("\n");
  await server.query(sql + "\nselect pg_catalog.set_config('search_path', 'public', false);", [], name);
  if (!withDefaults) return;
  const head = /alembic_head=(\w+)/.exec(readFileSync(join(FIXTURES, "alembic-head.txt"), "utf8"))![1];
  await server.query(
    `insert into public.alembic_version values ('${head}');
     insert into public.workspaces (name, description) values ('default', 'Default workspace for legacy resources');
     insert into public.experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
       values (0, 'Default', 'mlflow-artifacts:/0', 'active', 1, 1);`,
    [],
    name,
  );
}
