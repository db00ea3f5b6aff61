// The database side of backup and restore: PostgreSQL's own tools, run either inside the stack's `db` container
// (docker compose exec: the tools are the server's own version, and the local socket needs no password) or as local
// programs against --db URL (the password travels in PGPASSWORD, never on a command line).
//
// A backup reads everything in ONE snapshot: we open a REPEATABLE READ transaction, export its snapshot
// (pg_export_snapshot) and hand it to `pg_dump --snapshot`, and count every table's rows in that same transaction, so
// the counts in the manifest are exactly what the dump holds even while MLflow writes. The dump holds the `public`
// schema only (`--schema=public`: MLflow's tables, what a restore replaces); another schema in the same database is
// neither backed up nor touched by a restore (found by npm run test:stack, whose MLflow stand-in keeps a schema of
// its own: dumped whole, the restore failed on "schema already exists").
// https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-SNAPSHOT-SYNCHRONIZATION
//
// A restore replaces the `public` schema in one transaction: `pg_restore -f -` turns the dump into SQL that psql runs
// after `drop schema public cascade` (the dump creates it again) with --single-transaction and ON_ERROR_STOP, so a failure
// leaves the database exactly as it was; and tables a newer MLflow added (restoring an older backup) do not linger to
// break the later `db-upgrade`. psql commits when its input ends, so we hold the end back until the caller's `commit`
// gate settles (the dump's sha256, computed while it streamed, matched; every object is back): a rejected gate feeds
// psql a statement that raises instead, and the transaction is rolled back. Nothing is committed unless all is well,
// with no separate checksum pass before the restore (psql -1: https://www.postgresql.org/docs/current/app-psql.html).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type pg from "pg";
import { UserError } from "../cli.ts";
import { quoteIdent, redactUrl } from "../migrate/target.ts";

export interface PgTools {
  /** for messages: "pg_dump in the db container" / "local pg_dump 15.20" */
  describe: string;
  /** Major version of the tools, or undefined when they run in the server's own container. */
  major(): number | undefined;
  /** pg_dump -Fc of the snapshot, as a stream; `done` settles when pg_dump exits. */
  dump(snapshot: string): { stdout: Readable; done: Promise<void> };
  /**
   * Replaces the database's public schema with the dump read from `input`, in one transaction that commits only when
   * `commit()` resolves (called once pg_restore has sent everything and `input` was read to its end); when it rejects,
   * the transaction is rolled back and its error thrown.
   */
  restore(input: Readable, commit?: () => Promise<void>): Promise<void>;
}

function lastLine(text: string, fallback: string) {
  return text.trim().split("\n").filter(Boolean).at(-1) ?? fallback;
}

/** Resolves when the child exits 0; a UserError naming `what` and its last stderr line otherwise. */
function finished(child: ChildProcess, what: string): Promise<void> {
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  return new Promise((resolve, reject) => {
    child.once("error", (e) => reject(new UserError(`${what} could not start: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new UserError(`${what} failed: ${lastLine(stderr, signal ? `killed by ${signal}` : `exit ${code}`)}`));
    });
  });
}

// The dump (--schema=public) creates the schema itself (`CREATE SCHEMA public;`, pg_dump 15 and later when the schema is
// selected with --schema), so the prelude only drops it.
const PRELUDE = "drop schema if exists public cascade;\n";

// What psql is fed instead of the end of its input when the restore must not commit: end a COPY that pg_restore left
// open (a truncated dump), then raise; ON_ERROR_STOP makes psql quit and the transaction is rolled back.
const ABORT = "\n\\.\ndo $$ begin raise exception 'restore aborted before commit'; end $$;\n";

/** Runs `restoreArgs` (pg_restore -f -) into `psqlArgs` (psql, one transaction) with `spawnTool`. */
async function pipeRestore(spawnTool: (args: string[]) => ChildProcess, restoreArgs: string[], psqlArgs: string[], input: Readable, commit: () => Promise<void> = async () => {}) {
  const restore = spawnTool(restoreArgs);
  const psql = spawnTool(psqlArgs);
  const restoreDone = finished(restore, "pg_restore");
  const psqlDone = finished(psql, "psql (restoring the dump)");
  let inputFailed: unknown;
  input.once("error", (e) => {
    inputFailed = e;
    restore.stdin!.end();
  });
  input.pipe(restore.stdin!);
  restore.stdin!.on("error", () => {}); // pg_restore stopping early shows as its exit status
  psql.stdin!.on("error", () => {});
  psql.stdin!.write(PRELUDE);
  restore.stdout!.pipe(psql.stdin!, { end: false });
  // The commit decision: pg_restore has sent everything and exited 0, the input was read whole, and the gate passed.
  const gate = (async () => {
    // its output is in psql's input by now ('close' follows the end of its stdout)
    const failed = await restoreDone.then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    // pg_restore may stop reading before the end of the file: read the rest, so that a hash on `input` sees it all.
    if (!input.readableEnded && !inputFailed) {
      input.unpipe(restore.stdin!);
      await new Promise<void>((resolve) => {
        input.once("end", resolve).once("error", () => resolve()).resume();
      });
    }
    if (inputFailed) throw inputFailed;
    await commit(); // a damaged dump (its sha256) explains a pg_restore failure best: checked first
    if (failed) throw failed.error;
  })();
  const decided = await gate.then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  psql.stdin!.end(decided ? ABORT : undefined);
  const results = await Promise.allSettled([restoreDone, psqlDone]);
  if (decided) throw decided.error;
  const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}

/** Tools in the stack's db container: `docker compose exec -T db …` in the stack's directory. */
export function containerTools(dir: string, user: string, db: string, dockerExecutable = "docker"): PgTools {
  const exec = (args: string[]) => spawn(dockerExecutable, ["compose", "exec", "-T", "db", ...args], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
  return {
    describe: "pg_dump in the db container",
    major: () => undefined,
    dump(snapshot) {
      const child = exec(["pg_dump", "-U", user, "-d", db, "-Fc", "--schema=public", `--snapshot=${snapshot}`]);
      child.stdin!.end();
      return { stdout: child.stdout!, done: finished(child, "pg_dump (docker compose exec db)") };
    },
    restore: (input, commit) =>
      pipeRestore(exec, ["pg_restore", "--no-owner", "--no-privileges", "-f", "-"], ["psql", "-X", "-q", "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"], input, commit),
  };
}

/** Directory of PostgreSQL client programs: PATH first, else Debian's /usr/lib/postgresql/<newest>/bin. */
export function findPgBin(): string | undefined {
  const onPath = spawnSync("sh", ["-c", "command -v pg_dump"], { encoding: "utf8" }).stdout.trim();
  if (onPath) return join(onPath, "..");
  if (!existsSync("/usr/lib/postgresql")) return undefined;
  const versions = readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  return versions.length ? `/usr/lib/postgresql/${versions[0]}/bin` : undefined;
}

/** Local client programs against `url` (password separate). */
export function localTools(url: string, password: string | undefined, bin = findPgBin()): PgTools {
  if (!bin) throw new UserError("pg_dump not found — install the PostgreSQL client (apt-get install postgresql-client) or back up the local stack (no --db)");
  const u = new URL(url);
  u.password = "";
  const conn = u.toString();
  const env = { ...process.env, ...(password === undefined ? {} : { PGPASSWORD: password }) };
  const run = (args: string[]) => spawn(join(bin, args[0]), args.slice(1), { env, stdio: ["pipe", "pipe", "pipe"] });
  let major: number | undefined;
  let version = "";
  return {
    get describe() {
      return `local pg_dump ${version}`.trim();
    },
    major() {
      if (major === undefined) {
        const r = spawnSync(join(bin, "pg_dump"), ["--version"], { encoding: "utf8" });
        const m = /(\d+)(?:\.(\d+))?/.exec(r.stdout ?? "");
        if (!m) throw new UserError(`cannot run ${join(bin, "pg_dump")} --version — install the PostgreSQL client`);
        version = m[0];
        major = Number(m[1]);
      }
      return major;
    },
    dump(snapshot) {
      const child = run(["pg_dump", "-Fc", "--schema=public", `--snapshot=${snapshot}`, "-d", conn]);
      child.stdin!.end();
      return { stdout: child.stdout!, done: finished(child, `pg_dump (${redactUrl(url)})`) };
    },
    restore: (input, commit) => pipeRestore(run, ["pg_restore", "--no-owner", "--no-privileges", "-f", "-"], ["psql", "-X", "-q", "-d", conn, "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"], input, commit),
  };
}

/** The server's major version and full version text. */
export async function serverVersion(client: pg.Client): Promise<{ major: number; text: string }> {
  const r = await client.query<{ n: string; v: string }>("select current_setting('server_version_num') as n, current_setting('server_version') as v");
  return { major: Math.floor(Number(r.rows[0].n) / 10000), text: r.rows[0].v.split(" ")[0] };
}

/** Refuses client tools older than the server (pg_dump cannot dump a newer server). */
export function checkToolVersion(tools: PgTools, server: { major: number; text: string }) {
  const major = tools.major();
  if (major !== undefined && major < server.major) {
    throw new UserError(`${tools.describe} is older than the server (PostgreSQL ${server.text}) — install PostgreSQL ${server.major}'s client tools, or back up the local stack (no --db: uses the server's own pg_dump)`);
  }
}

/** Tables of the public schema, for counting. */
export async function publicTables(client: pg.Client): Promise<string[]> {
  const r = await client.query<{ t: string }>(`select c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`);
  return r.rows.map((x) => x.t);
}

export async function rowCounts(client: pg.Client): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const t of await publicTables(client)) {
    counts[t] = Number((await client.query<{ n: string }>(`select count(*) as n from public.${quoteIdent(t)}`)).rows[0].n);
  }
  return counts;
}

export async function alembicRevision(client: pg.Client): Promise<string | null> {
  const has = await client.query(`select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relname = 'alembic_version'`);
  if (!has.rowCount) return null;
  const r = await client.query<{ v: string }>("select version_num as v from public.alembic_version");
  return r.rows[0]?.v ?? null;
}

/**
 * Opens a REPEATABLE READ transaction on `client` and exports its snapshot. Keep the transaction open until pg_dump
 * has finished; `end()` closes it.
 */
export async function exportSnapshot(client: pg.Client): Promise<{ id: string; end(): Promise<void> }> {
  await client.query("begin isolation level repeatable read read only");
  const id = (await client.query<{ s: string }>("select pg_export_snapshot() as s")).rows[0].s;
  return { id, end: async () => void (await client.query("commit")) };
}

/**
 * The advisory lock that keeps two backups or restores of one database from running at once (two-int key, session
 * level: held until the connection ends, also when the process is killed). The holder names itself in
 * application_name, so a refused run can say who holds it (pg_locks joined with pg_stat_activity).
 * https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 */
export const ADVISORY_LOCK = [0x6d6c66, 0x626b] as const; // "mlf", "bk"
export const LOCK_APPLICATION = "mlflow-stack";

export async function lockDatabase(client: pg.Client, what: "backup" | "restore", describe: string): Promise<void> {
  await client.query("select set_config('application_name', $1, false)", [`${LOCK_APPLICATION} ${what} pid=${process.pid} host=${hostname()}`.slice(0, 63)]);
  const got = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1, $2) as ok", [...ADVISORY_LOCK]);
  if (got.rows[0].ok) return;
  const r = await client.query<{ app: string; pid: number; since: Date | null; addr: string | null }>(
    `select a.application_name as app, a.pid, a.backend_start as since, a.client_addr::text as addr
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.classid = $1::int::oid and l.objid = $2::int::oid and l.objsubid = 2 and l.granted`,
    [...ADVISORY_LOCK],
  );
  const h = r.rows[0];
  const m = h ? new RegExp(`^${LOCK_APPLICATION} (\\w+) pid=(\\d+) host=(.*)$`).exec(h.app) : null;
  const who = m
    ? `a ${m[1]} (pid ${m[2]} on host ${m[3]}, since ${h.since?.toISOString() ?? "?"})`
    : h
      ? `session ${h.pid} (${h.app || "no application_name"}${h.addr ? ` from ${h.addr}` : ""}, since ${h.since?.toISOString() ?? "?"})`
      : "another session";
  throw new UserError(`another backup or restore is running against ${describe}: ${who} holds its lock — wait for it to finish, then re-run; nothing was changed`);
}
