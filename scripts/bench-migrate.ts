// npm run bench:migrate -- [--metrics 5000000]
// Inflates the real MLflow fixture to a large database, migrates it into the schema MLflow creates (a throwaway
// PostgreSQL 15 from initdb, in a temp dir) and prints wall time, rows/s and peak RSS next to anchors measured in the
// same run on the same data and schema: a plain streaming COPY (sqlite3 | psql, keys in place) and pgloader's data-only
// recipe when pgloader is installed. A benchmark, not a test: it prints figures.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { parseCli, runCli, UserError } from "./lib/cli.ts";
import { inflate } from "./lib/migrate/inflate.ts";
import { readCatalog } from "./lib/migrate/target.ts";
import { findBinary } from "../test/support/binaries.ts";
import { timed } from "./lib/bench-timing.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "../test/support/postgres.ts";
import { makeTempDir } from "../test/support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Row {
  method: string;
  seconds: number;
  rss?: number;
  note: string;
}

/** sqlite3 -csv | psql \copy, table by table in foreign-key order, into the schema with all keys in place. */
async function plainCopy(server: TestPostgres, db: string, source: string): Promise<number> {
  const client = new pg.Client({ connectionString: server.url(db) });
  await client.connect();
  const catalog = await readCatalog(client);
  await client.query("truncate experiments, workspaces cascade");
  await client.end();
  const env = { ...process.env, PGPASSWORD: server.password };
  const t0 = performance.now();
  for (const name of catalog.order) {
    if (name === "alembic_version") continue;
    const columns = catalog.tables.get(name)!.columns.filter((c) => !c.generated);
    const cols = columns.map((c) => c.name);
    // The sqlite3 CLI prints doubles with 15 digits (±inf as MLflow stores it becomes out of range): print 17.
    const expr = (c: (typeof columns)[number]) => (c.kind === "float8" ? `case when "${c.name}" is null then null else printf('%!.17g', "${c.name}") end` : `"${c.name}"`);
    const sql = `select ${columns.map(expr).join(", ")} from "${name}"`;
    const reader = spawn("sqlite3", ["-csv", source, sql], { stdio: ["ignore", "pipe", "inherit"] });
    const writer = spawn("psql", ["-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(server.port), "-U", server.user, "-d", db, "-c", `\\copy "${name}" (${cols.map((c) => `"${c}"`).join(", ")}) from stdin csv`], {
      stdio: ["pipe", "inherit", "inherit"],
      env,
    });
    reader.stdout.pipe(writer.stdin);
    const code = await new Promise<number | null>((resolve) => writer.once("exit", resolve));
    if (code !== 0) throw new Error(`plain COPY of ${name} failed`);
  }
  return (performance.now() - t0) / 1000;
}

async function main() {
  const { values } = parseCli("bench:migrate", process.argv.slice(2), { metrics: { type: "string" }, "no-anchors": { type: "boolean" } });
  if (values.help) {
    process.stdout.write("Usage: npm run bench:migrate -- [--metrics 5000000] [--no-anchors]\n  --no-anchors  time only npm run migrate (while tuning it; the comparison needs the anchors)\n");
    return;
  }
  const metrics = Number(values.metrics ?? 1_000_000);
  if (!Number.isInteger(metrics) || metrics < 1) throw new UserError("--metrics must be a positive integer");
  if (!initdbPath) throw new UserError("PostgreSQL 15 binaries not found (apt-get install postgresql-15)");
  const tmp = makeTempDir("bench-migrate");
  const server = await startPostgres();
  try {
    const source = join(tmp.dir, "mlflow.db");
    process.stderr.write(`bench: inflating the fixture with ${metrics} metrics...\n`);
    const { rows } = inflate(join(FIXTURES, "mlflow-small.sqlite"), source, metrics);
    const all = spawnSync("sqlite3", [source, "select (select count(*) from metrics)"], { encoding: "utf8" });
    process.stderr.write(`bench: source ready (${all.stdout.trim()} metrics); PostgreSQL at 127.0.0.1:${server.port} (fsync off in this throwaway cluster)\n`);
    const results: Row[] = [];

    // 1. Ours, as users run it.
    await createMlflowDatabase(server, "ours");
    const pwfile = join(tmp.dir, "pw");
    (await import("node:fs")).writeFileSync(pwfile, server.password, { mode: 0o600 });
    const to = `postgresql://${server.user}@127.0.0.1:${server.port}/ours`;
    process.stderr.write("bench: npm run migrate...\n");
    const ours = timed(process.execPath, ["--import", "tsx", "scripts/migrate.ts", "--from", source, "--to", to, "--password-file", pwfile, "--yes", "--json", "--no-artifacts"]);
    if (ours.status !== 0) throw new UserError(`migrate failed: ${ours.stderr.trim().split("\n").slice(-3).join(" / ")}`);
    const out = JSON.parse(ours.stdout);
    const seq = await server.query<{ id: number }>(`insert into experiments (name) values ('bench-next') returning experiment_id as id`, [], "ours");
    results.push({ method: "npm run migrate (verified, one transaction)", seconds: ours.seconds, rss: ours.rssKiB, note: `${out.verified.filter((v: { ok: boolean }) => v.ok).length}/${out.verified.length} tables verified; new experiment id ${seq.rows[0].id}` });

    // 2. Plain streaming COPY with every key in place (not verified; sqlite3's CSV rounds some doubles).
    if (values["no-anchors"]) {
      // Tuning run: the anchors are left out (the table below says so).
    } else if (findBinary("sqlite3") && findBinary("psql")) {
      await createMlflowDatabase(server, "plain");
      process.stderr.write("bench: plain COPY (sqlite3 | psql)...\n");
      const secs = await plainCopy(server, "plain", source);
      const next = await server.query<{ id: number }>(`select nextval('experiments_experiment_id_seq')::int as id`, [], "plain");
      results.push({ method: "sqlite3 -csv | psql \\copy (keys in place)", seconds: secs, note: `no checks; sequence left at ${next.rows[0].id}` });
    } else {
      results.push({ method: "sqlite3 | psql COPY", seconds: NaN, note: "sqlite3 or psql not installed" });
    }

    // 3. pgloader's data-only recipe.
    const pgloader = findBinary("pgloader");
    if (values["no-anchors"]) {
      // see above
    } else if (pgloader) {
      await createMlflowDatabase(server, "pgloader");
      await server.query("truncate experiments, workspaces cascade", [], "pgloader");
      const load = join(tmp.dir, "load.pgl");
      (await import("node:fs")).writeFileSync(
        load,
        `LOAD DATABASE FROM sqlite://${source} INTO postgresql://${server.user}@127.0.0.1:${server.port}/pgloader
         WITH data only, truncate, reset no sequences EXCLUDING TABLE NAMES LIKE 'alembic_version';\n`,
      );
      process.stderr.write("bench: pgloader...\n");
      const r = timed(pgloader, [load], { ...process.env, PGPASSWORD: server.password });
      results.push({ method: "pgloader data-only recipe", seconds: r.seconds, rss: r.rssKiB, note: r.status === 0 ? "sequences not reset" : `failed (${r.status})` });
    } else {
      results.push({ method: "pgloader data-only recipe", seconds: NaN, note: "pgloader not installed (apt-get install pgloader)" });
    }

    const total = out.plan.totalRows as number;
    process.stdout.write(`\nMigrating ${total.toLocaleString("en-US")} rows (${metrics.toLocaleString("en-US")} generated metrics + the fixture), ${rows} in the big tables\n\n`);
    process.stdout.write(`${"method".padEnd(46)} ${"wall s".padStart(8)} ${"rows/s".padStart(10)} ${"peak RSS".padStart(10)}  note\n`);
    for (const r of results) {
      const rate = Number.isNaN(r.seconds) ? "-" : Math.round(total / r.seconds).toLocaleString("en-US");
      const rss = r.rss ? `${Math.round(r.rss / 1024)} MiB` : "-";
      process.stdout.write(`${r.method.padEnd(46)} ${(Number.isNaN(r.seconds) ? "-" : r.seconds.toFixed(1)).padStart(8)} ${rate.padStart(10)} ${rss.padStart(10)}  ${r.note}\n`);
    }
    process.stdout.write(`\nnpm run migrate by phase (wall s; node startup and the summary make up the rest):\n`);
    for (const p of out.phases as { phase: string; seconds: number }[]) process.stdout.write(`  ${p.phase.padEnd(44)} ${p.seconds.toFixed(1).padStart(8)}\n`);
    const anchor = results.find((r) => r.method.startsWith("pgloader"));
    if (anchor && !Number.isNaN(anchor.seconds)) {
      process.stdout.write(`\nmigrate / pgloader wall time: ${(ours.seconds / anchor.seconds).toFixed(2)} (goal: at most 0.50)\n`);
    }
  } finally {
    await server.stop();
    tmp.cleanup();
  }
}

await runCli("bench:migrate", main);
