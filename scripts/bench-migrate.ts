// npm run bench:migrate -- [--metrics 5000000] [--shape long|wide|both] [--rounds 3] [--fast-cluster] [--no-anchors] [--json]
// Inflates the real MLflow fixture to a large database in two shapes (long training histories; many short runs),
// migrates it into the schema MLflow creates and prints wall time, rows/s and peak RSS next to, measured in the same
// run on the same data and schema: the floor (PostgreSQL's own server-side COPY FREEZE from files, then the same keys,
// indexes and foreign keys: floor.ts) and pgloader's data-only recipe when pgloader is installed.
// The PostgreSQL is a throwaway cluster (initdb in a temp dir) configured like the stack's `db` service: the postgres
// image's defaults (compose.yml sets no server setting), i.e. fsync, full_page_writes and synchronous_commit on,
// wal_level replica, data checksums on as PostgreSQL 18's initdb does by default (compose.yml runs 18; the binaries
// here are 15.x, whose initdb needs --data-checksums for that), and the en_US.utf8 collation the image's initdb gets
// from its LANG (docker-library/postgres 18/trixie/Dockerfile: ENV LANG en_US.utf8), started fresh for each method,
// whose input (the SQLite file, the floor's COPY files) is read into the page cache first (see settle).
// --fast-cluster keeps the tests' throwaway settings (fsync off, C.UTF-8, ...) for development; the header says which.
// A benchmark, not a test: it prints figures.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { parseCli, runCli, UserError } from "./lib/cli.ts";
import { loadFloor, writeFloorFiles, type FloorFile } from "./lib/migrate/floor.ts";
import { inflate, type Shape } from "./lib/migrate/inflate.ts";
import { openSource } from "./lib/migrate/source.ts";
import { readCatalog } from "./lib/migrate/target.ts";
import { findBinary } from "../test/support/binaries.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "../test/support/postgres.ts";
import { makeTempDir } from "../test/support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const USAGE = `Usage: npm run bench:migrate -- [--metrics 5000000] [--shape long|wide|both] [--rounds 3] [--fast-cluster] [--no-anchors] [--cpu-prof DIR] [--json]
  --metrics N      generated metrics per shape (default 5000000)
  --shape S        long: 10 runs x 5 keys x N/50 steps; wide: N/1000 runs of 10 keys x 100 steps, 20 params, 10 tags
                   each; both (default)
  --fast-cluster   PostgreSQL with fsync, full_page_writes, synchronous_commit off, no data checksums and the C.UTF-8
                   collation (development only: not what users migrate into)
  --no-anchors     time only npm run migrate (while tuning it; the comparison needs the floor and pgloader)
  --rounds N       runs of ours and of the floor per shape, alternating, each on a fresh cluster (default 3); the
                   median is reported (pgloader runs once)
  --cpu-prof DIR   write a V8 CPU profile of npm run migrate's first round to DIR (node --cpu-prof)
  --json           print the results as JSON on stdout
`;

/** The settings of the stack's db service as far as they matter here (compose.yml sets none: the image's defaults). */
const PRODUCTION_LIKE = { durable: true, dataChecksums: true, locale: "en_US.UTF-8", settings: { wal_level: "replica" } };
const SHOWN = ["server_version", "lc_collate", "fsync", "full_page_writes", "synchronous_commit", "wal_level", "data_checksums", "shared_buffers", "max_wal_size", "maintenance_work_mem", "max_parallel_maintenance_workers", "max_worker_processes"];

interface Result {
  method: string;
  /** The median of the rounds (of one run for pgloader). */
  seconds: number;
  /** Wall seconds of every round, in the order run. */
  rounds?: number[];
  /** The largest of the rounds. */
  rssKiB?: number;
  note: string;
  /** Of the median round. */
  phases?: { phase: string; seconds: number }[];
}

interface ShapeResult {
  shape: Shape;
  rows: number;
  metrics: number;
  loadavgBefore: string;
  loadavgAfter: string;
  results: Result[];
  oursOverFloor?: number;
  pgloaderOverOurs?: number;
}

// Everything to undo on Ctrl-C: the running child, the cluster, the temp dir.
const running = new Set<ChildProcess>();
const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | undefined;
function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of running) {
      try {
        process.kill(-c.pid!, "SIGTERM"); // its process group: /usr/bin/time does not pass SIGTERM on to the command
      } catch {
        // already gone
      }
    }
    for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {});
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping PostgreSQL and removing the temp files...\n`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Runs a command (under /usr/bin/time when installed); wall seconds and peak RSS (KiB, the largest process). */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ seconds: number; rssKiB?: number; stdout: string; stderr: string; status: number | null }> {
  const hasTime = !!findBinary("time", ["/usr/bin"]);
  const t0 = performance.now();
  const options = { cwd: ROOT, env, detached: true }; // a process group of its own, ended as one on Ctrl-C
  const child = hasTime ? spawn("/usr/bin/time", ["-f", "RSSKIB=%M", cmd, ...args], options) : spawn(cmd, args, options);
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) =>
    child.once("close", (status) => {
      running.delete(child);
      const m = /RSSKIB=(\d+)/.exec(stderr);
      resolve({ seconds: (performance.now() - t0) / 1000, rssKiB: m ? Number(m[1]) : undefined, stdout, stderr, status });
    }),
  );
}

async function settingsOf(server: TestPostgres): Promise<Record<string, string>> {
  const r = await server.query<{ name: string; setting: string; unit: string | null }>(`select name, setting, unit from pg_settings where name = any($1)`, [SHOWN]);
  const out: Record<string, string> = {};
  for (const name of SHOWN) {
    const row = r.rows.find((x) => x.name === name);
    if (!row) continue;
    const n = Number(row.setting);
    out[name] = row.unit === "8kB" ? `${(n * 8) / 1024}MB` : row.unit === "kB" ? `${n / 1024}MB` : row.unit === "MB" ? `${n}MB` : row.setting;
  }
  return out;
}

/** One round of the floor: the COPY files (written once per shape, see runShape) loaded into a fresh database. */
async function floor(server: TestPostgres, files: FloorFile[]): Promise<Result> {
  await createMlflowDatabase(server, "floor");
  const client = new pg.Client({ connectionString: server.url("floor") });
  client.on("error", () => {}); // the server going away (Ctrl-C) surfaces as a failed query, not an uncaught error
  await client.connect();
  try {
    const catalog = await readCatalog(client);
    await settle(server, files.map((f) => f.path));
    process.stderr.write("bench: floor: server-side COPY FREEZE, keys, indexes, foreign keys...\n");
    const t0 = performance.now();
    const phases = await loadFloor(client, catalog, files);
    const seconds = (performance.now() - t0) / 1000;
    return { method: "floor: server-side COPY FREEZE + same keys", seconds, note: `${files.length} tables from files, one transaction`, phases };
  } finally {
    await client.end();
  }
}

/** Writes the floor's COPY files for `source` into `dir` (not timed), from the catalog of a fresh MLflow schema. */
async function floorFiles(start: () => Promise<TestPostgres>, source: string, dir: string): Promise<FloorFile[]> {
  process.stderr.write("bench: floor: writing the COPY files (not timed)...\n");
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  return onFreshCluster(start, async (server) => {
    await createMlflowDatabase(server, "schema");
    const client = new pg.Client({ connectionString: server.url("schema") });
    await client.connect();
    const src = openSource(source);
    try {
      return writeFloorFiles(src, await readCatalog(client), dir);
    } finally {
      src.close();
      await client.end();
    }
  });
}

/** Ours, as users run it: `npm run migrate` into a fresh MLflow schema. */
async function ours(server: TestPostgres, tmp: string, source: string, cpuProf?: string): Promise<{ result: Result; plan: { totalRows: number } }> {
  await createMlflowDatabase(server, "ours");
  const pwfile = join(tmp, "pw");
  writeFileSync(pwfile, server.password, { mode: 0o600 });
  const to = `postgresql://${server.user}@127.0.0.1:${server.port}/ours`;
  await settle(server, [source]);
  process.stderr.write("bench: npm run migrate...\n");
  const prof = cpuProf ? ["--cpu-prof", "--cpu-prof-dir", cpuProf] : [];
  const r = await timed(process.execPath, [...prof, "--import", "tsx", "scripts/migrate.ts", "--from", source, "--to", to, "--password-file", pwfile, "--yes", "--json", "--no-artifacts"]);
  if (r.status !== 0) throw new UserError(`migrate failed: ${r.stderr.trim().split("\n").slice(-3).join(" / ")}`);
  const out = JSON.parse(r.stdout);
  const verified = out.verified.filter((v: { ok: boolean }) => v.ok).length;
  return { result: { method: "npm run migrate (verified, one transaction)", seconds: r.seconds, rssKiB: r.rssKiB, note: `${verified}/${out.verified.length} tables verified`, phases: out.phases }, plan: out.plan };
}

/** The round with the median wall time (the lower middle one for an even count), the others' times kept in `rounds`. */
function median(runs: Result[]): Result {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)];
  const rss = runs.map((r) => r.rssKiB ?? 0);
  return { ...mid, rounds: runs.map((r) => r.seconds), rssKiB: Math.max(...rss) || undefined };
}

/**
 * Each method runs on a cluster of its own, started fresh (as the stack's db is when users migrate into it), after
 * `sync`, so none inherits another's WAL segments, dirty pages or the write-back of the source file just written.
 */
async function onFreshCluster<T>(start: () => Promise<TestPostgres>, fn: (server: TestPostgres) => Promise<T>): Promise<T> {
  const server = await start();
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/**
 * Before each timed method: its input read once (into the page cache: this VM evicts files left untouched for a few
 * minutes, and a method whose input came from disk would measure the disk), dirty pages written out, a checkpoint.
 */
function settle(server: TestPostgres, inputs: string[]) {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const path of inputs) {
    const fd = openSync(path, "r");
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
  spawnSync("sync");
  return server.query("checkpoint");
}

async function runShape(start: () => Promise<TestPostgres>, tmp: string, shape: Shape, metrics: number, opts: { anchors: boolean; rounds: number; cpuProf?: string }): Promise<ShapeResult> {
  const source = join(tmp, `mlflow-${shape}.db`);
  process.stderr.write(`bench: ${shape}: inflating the fixture with ${metrics} metrics...\n`);
  inflate(join(FIXTURES, "mlflow-small.sqlite"), source, metrics, shape);
  const loadavgBefore = loadavg();
  const dir = join(tmp, "floor");
  const files = opts.anchors ? await floorFiles(start, source, dir) : [];
  const oursRuns: Result[] = [];
  const floorRuns: Result[] = [];
  let plan: { totalRows: number } | undefined;
  // Ours and the floor alternate (ours first in odd rounds, the floor in even ones), each on a fresh cluster.
  for (let round = 1; round <= opts.rounds; round++) {
    process.stderr.write(`bench: ${shape}: round ${round} of ${opts.rounds}\n`);
    const runOurs = async () => {
      const r = await onFreshCluster(start, (server) => ours(server, tmp, source, round === 1 ? opts.cpuProf : undefined));
      oursRuns.push(r.result);
      plan = r.plan;
    };
    const runFloor = async () => void (opts.anchors && floorRuns.push(await onFreshCluster(start, (server) => floor(server, files))));
    if (round % 2 === 1) (await runOurs(), await runFloor());
    else (await runFloor(), await runOurs());
  }
  rmSync(dir, { recursive: true, force: true });
  const results: Result[] = [median(oursRuns)];
  if (opts.anchors) {
    results.push(median(floorRuns));
    // pgloader's data-only recipe: one run (it is far from the 2x line either way, and a run takes minutes).
    const pgloader = findBinary("pgloader");
    if (pgloader) {
      results.push(
        await onFreshCluster(start, async (server) => {
          await createMlflowDatabase(server, "pgloader");
          await server.query("truncate experiments, workspaces cascade", [], "pgloader");
          const load = join(tmp, "load.pgl");
          writeFileSync(
            load,
            `LOAD DATABASE FROM sqlite://${source} INTO postgresql://${server.user}@127.0.0.1:${server.port}/pgloader
             WITH data only, truncate, reset no sequences EXCLUDING TABLE NAMES LIKE 'alembic_version';\n`,
          );
          await settle(server, [source]);
          process.stderr.write(`bench: ${shape}: pgloader...\n`);
          const r = await timed(pgloader, [load], { ...process.env, PGPASSWORD: server.password });
          return { method: "pgloader data-only recipe", seconds: r.seconds, rounds: [r.seconds], rssKiB: r.rssKiB, note: r.status === 0 ? "keys in place, no checks, sequences not reset" : `failed (${r.status})` };
        }),
      );
    } else {
      results.push({ method: "pgloader data-only recipe", seconds: NaN, note: "pgloader not installed (apt-get install pgloader)" });
    }
  }
  rmSync(source, { force: true });
  const sec = (prefix: string) => results.find((r) => r.method.startsWith(prefix))?.seconds ?? NaN;
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? a / b : undefined);
  return {
    shape,
    rows: plan!.totalRows,
    metrics,
    loadavgBefore,
    loadavgAfter: loadavg(),
    results,
    oursOverFloor: ratio(sec("npm run migrate"), sec("floor")),
    pgloaderOverOurs: ratio(sec("pgloader"), sec("npm run migrate")),
  };
}

function print(s: ShapeResult) {
  const w = (x: string) => process.stdout.write(x);
  const what = s.shape === "long" ? "10 runs x 5 keys, long histories" : "many runs with short histories, params and tags";
  w(`\n${s.shape}: ${s.rows.toLocaleString("en-US")} rows (${s.metrics.toLocaleString("en-US")} generated metrics, ${what}); loadavg ${s.loadavgBefore} -> ${s.loadavgAfter}\n\n`);
  w(`${"method".padEnd(46)} ${"wall s".padStart(8)} ${"rows/s".padStart(10)} ${"peak RSS".padStart(10)}  rounds (s)          note\n`);
  for (const r of s.results) {
    const rate = Number.isNaN(r.seconds) ? "-" : Math.round(s.rows / r.seconds).toLocaleString("en-US");
    const rss = r.rssKiB ? `${Math.round(r.rssKiB / 1024)} MiB` : "-";
    const rounds = (r.rounds ?? []).map((x) => x.toFixed(1)).join(" ");
    w(`${r.method.padEnd(46)} ${(Number.isNaN(r.seconds) ? "-" : r.seconds.toFixed(1)).padStart(8)} ${rate.padStart(10)} ${rss.padStart(10)}  ${rounds.padEnd(18)}  ${r.note}\n`);
  }
  w("wall s: the median of the rounds; peak RSS: the largest\n");
  for (const r of s.results.filter((x) => x.phases)) {
    w(`\n${r.method.split(":")[0]} by phase, median round (wall s):\n`);
    for (const p of r.phases!) if (p.seconds >= 0.05) w(`  ${p.phase.padEnd(44)} ${p.seconds.toFixed(1).padStart(8)}\n`);
  }
  if (s.oursOverFloor !== undefined) w(`\nours / floor: ${s.oursOverFloor.toFixed(2)} (goal: at most 1.25)\n`);
  if (s.pgloaderOverOurs !== undefined) w(`pgloader / ours: ${s.pgloaderOverOurs.toFixed(2)} (goal: at least 2)\n`);
}

async function main() {
  const { values } = parseCli("bench:migrate", process.argv.slice(2), {
    metrics: { type: "string" },
    shape: { type: "string" },
    "fast-cluster": { type: "boolean" },
    "no-anchors": { type: "boolean" },
    "cpu-prof": { type: "string" },
    rounds: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return void process.stdout.write(USAGE);
  const metrics = Number(values.metrics ?? 5_000_000);
  if (!Number.isInteger(metrics) || metrics < 1) throw new UserError("--metrics must be a positive integer, e.g. --metrics 1000000");
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UserError("--rounds must be a positive integer, e.g. --rounds 3");
  const shapeArg = values.shape ?? "both";
  if (!["long", "wide", "both"].includes(shapeArg)) throw new UserError(`--shape must be long, wide or both, got ${JSON.stringify(shapeArg)}`);
  const shapes: Shape[] = shapeArg === "both" ? ["long", "wide"] : [shapeArg as Shape];
  if (!initdbPath) throw new UserError("PostgreSQL 15 binaries not found (apt-get install postgresql-15)");
  const fast = !!values["fast-cluster"];
  if (!fast && !/^en_US\.utf-?8$/im.test(spawnSync("locale", ["-a"], { encoding: "utf8" }).stdout ?? "")) {
    throw new UserError("the en_US.UTF-8 locale is not installed (the postgres image initialises its cluster with it) — run: echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen && locale-gen (package locales), or pass --fast-cluster");
  }
  const tmp = makeTempDir("bench-migrate");
  chmodSync(tmp.dir, 0o755); // the floor's files are read by the server's OS user
  cleanups.push(tmp.cleanup);
  try {
    const start = async () => {
      const server = await startPostgres(fast ? {} : PRODUCTION_LIKE);
      cleanups.push(() => server.stop());
      return server;
    };
    const settings = await onFreshCluster(start, settingsOf);
    const label = fast
      ? "FAST THROWAWAY cluster (--fast-cluster: fsync, full_page_writes, synchronous_commit off; NOT what users migrate into)"
      : "production-like cluster (the stack's db service: postgres image defaults, en_US.utf8 from its LANG; data checksums on as PostgreSQL 18's initdb does; these binaries are 15.x)";
    const header = `PostgreSQL: ${label}\n  ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(", ")}\nmachine: ${(await import("node:os")).availableParallelism()} cores, loadavg ${loadavg()}\n`;
    if (!values.json) process.stdout.write(header);
    const all: ShapeResult[] = [];
    for (const shape of shapes) {
      const r = await runShape(start, tmp.dir, shape, metrics, { anchors: !values["no-anchors"], rounds, cpuProf: values["cpu-prof"] ? resolve(values["cpu-prof"]) : undefined });
      all.push(r);
      if (!values.json) print(r);
    }
    if (values.json) process.stdout.write(JSON.stringify({ cluster: fast ? "fast" : "production-like", settings, shapes: all }, null, 2) + "\n");
  } finally {
    await cleanupAll();
  }
}

await runCli("bench:migrate", main);
