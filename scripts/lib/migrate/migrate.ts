// `npm run migrate`: SQLite MLflow -> the schema MLflow created in PostgreSQL, in ONE transaction:
// lock, drop keys/indexes/foreign keys, TRUNCATE, COPY FREEZE every table, rebuild indexes and keys, validate the
// foreign keys once, reset sequences, verify checksums, rewrite artifact locations, commit. Any failure (or a kill)
// before COMMIT leaves the target exactly as it was.
import type pg from "pg";
import { UserError } from "../cli.ts";
import { copyTable, sharedColumns } from "./copy.ts";
import type { Checksum } from "./row-encoder.ts";
import { resetSequences, type SequenceReset } from "./sequences.ts";
import { openSource, type Source } from "./source.ts";
import { APPLICATION_NAME, connectTarget, otherSessions, readCatalog, redactUrl, smokeLeftovers, targetAlembicVersion, targetFailure, userData, type Catalog } from "./target.ts";
import { chooseRowHash, compare, targetChecksum, type VerifiedTable } from "./verify.ts";
import { rewriteLocations, type LocationRewrite } from "./locations.ts";
import { buildKeysAndIndexes } from "./index-build.ts";
import { describeBadText, findBadText, type BadText } from "./text-check.ts";

export type MigrateEvent =
  | { type: "phase"; message: string }
  | { type: "table-start"; table: string; total: number }
  | { type: "table-progress"; table: string; done: number; total: number }
  | { type: "table-done"; table: string; rows: number; seconds: number };

export interface MigrateOptions {
  from: string;
  to: string;
  password?: string;
  replace?: boolean;
  dryRun?: boolean;
  /** Worker threads reading and encoding a big table besides the copying thread (copy.ts, lanes.ts); default 0. */
  workers?: number;
  /** Read every table through better-sqlite3 (readRows), never straight from the file (file-rows.ts). */
  sqliteReader?: boolean;
  /** How long to wait for table locks held by someone else before giving up. */
  lockTimeoutMs?: number;
  /** Artifact locations to rewrite in the copied rows: old value -> new value (artifacts.ts plans them). */
  locationRewrites?: Map<string, string>;
  /** Text that is not valid UTF-8, NUL bytes, BLOBs in text columns: replaced with U+FFFD and listed (default: refused). */
  replaceInvalidText?: boolean;
  /** Copy the source's registry webhooks as they are (default: copied deactivated, they name the old environment). */
  keepWebhooksActive?: boolean;
  /**
   * When the source's schema revision differs from the target's: returns a copy of the source brought to the target's
   * revision (upgrade.ts), which is migrated instead. Without it a difference is refused.
   */
  upgradeSource?: (revisions: { source: string; target: string }) => Promise<{ path: string; cleanup(): void }>;
  /** Called after the pre-flight checks with the plan; false = stop without writing. */
  confirm?: (plan: Plan) => Promise<boolean>;
  /** Runs after the pre-flight checks and before the database transaction (the artifact upload). */
  beforeCopy?: (plan: Plan) => Promise<void>;
  /** Runs inside the transaction just before COMMIT (the check that the artifacts are in the bucket); a throw rolls back. */
  beforeCommit?: () => Promise<void>;
  onEvent?: (e: MigrateEvent) => void;
}

export interface Plan {
  source: string;
  target: string;
  alembicVersion: string;
  tables: { table: string; rows: number }[];
  totalRows: number;
  replace: boolean;
  /** What the target held before (empty list = a fresh MLflow schema). */
  targetUserData: string[];
  /** Ids of experiments smoke created and deleted in the target: replaced like a fresh schema's Default experiment. */
  smokeLeftovers: string[];
  skippedSourceTables: string[];
  /** Text values the target cannot hold as they are (replaced with U+FFFD: only with replaceInvalidText). */
  invalidText: BadText[];
  /** The source's webhooks (their URLs point at the old environment). */
  webhooks: { name: string; url: string; status: string; copiedAs: string }[];
}

export interface MigrateResult {
  plan: Plan;
  dryRun: boolean;
  committed: boolean;
  verified: VerifiedTable[];
  sequences: SequenceReset[];
  locations: LocationRewrite[];
  /** true when the artifacts were checked in the bucket before the commit. */
  artifactsVerified: boolean;
  /** Wall seconds per phase, in order (per table for the copy: "copy <table>"). */
  phases: { phase: string; seconds: number }[];
  seconds: number;
  rowsPerSecond: number;
}

export async function preflight(source: Source, client: pg.Client, catalog: Catalog, opts: MigrateOptions): Promise<Plan> {
  const enc = (await client.query<{ e: string }>("select current_setting('server_encoding') as e")).rows[0].e;
  if (enc.toUpperCase() !== "UTF8") throw new UserError(`target database encoding is ${enc}; MLflow's data needs UTF8 — create the database with ENCODING 'UTF8'`);
  const version = await targetAlembicVersion(client, catalog);
  if (version === undefined) {
    throw new UserError(
      `${redactUrl(opts.to)} has no MLflow schema — start MLflow on it once so it creates the schema (the stack: docker compose up -d --wait), then re-run`,
    );
  }
  if (version !== source.alembicVersion) {
    throw new UserError(
      `schema revisions differ: source ${source.alembicVersion}, target ${version} — the source must come from the same MLflow version as the stack: ` +
        `if it is older, pass --upgrade-source (a temp copy is upgraded with the stack's MLflow and migrated; the original stays as it is); ` +
        `if it is newer, raise MLFLOW_VERSION of the stack first`,
    );
  }
  const tables: { table: string; rows: number }[] = [];
  const skipped: string[] = [];
  for (const [name, t] of source.tables) {
    if (name === "alembic_version") continue;
    const target = catalog.tables.get(name);
    if (!target) {
      if (t.rows > 0) throw new UserError(`source table ${name} (${t.rows} rows) does not exist in the target — same MLflow version expected; nothing was written`);
      skipped.push(name);
      continue;
    }
    const missing = t.columns.filter((c) => !target.columns.some((tc) => tc.name === c));
    if (missing.length) throw new UserError(`target table ${name} lacks column(s) ${missing.join(", ")} of the source — same MLflow version expected; nothing was written`);
  }
  for (const name of catalog.order) {
    if (name === "alembic_version") continue;
    const t = source.tables.get(name);
    if (t) tables.push({ table: name, rows: t.rows });
  }
  const leftovers = await smokeLeftovers(client, catalog);
  const existing = await userData(client, catalog, leftovers);
  if (existing.length && !opts.replace) {
    throw new UserError(`target is not empty (${existing.slice(0, 4).join(", ")}${existing.length > 4 ? ", …" : ""}) — nothing was written; use --replace to overwrite it (its data is deleted), or an empty MLflow database`);
  }
  const sessions = await otherSessions(client);
  if (sessions.length && !opts.dryRun) {
    // A migration killed with -9 (or whose forwarder died) can leave its session open, holding its transaction.
    const ours = sessions.filter((s) => s.application === APPLICATION_NAME);
    if (ours.length) {
      const s = ours[0];
      throw new UserError(
        `a migration's session is still open on the target (pid ${s.pid}, ${s.state}${s.since ? ` since ${s.since}` : ""}; left by a migration that was killed or is still running) — ` +
          `wait for it to finish, or end it (its transaction is rolled back) with: select pg_terminate_backend(${s.pid}); then re-run; nothing was written`,
      );
    }
    const who = sessions.slice(0, 3).map((s) => `${s.application || "unnamed"}@${s.client} pid ${s.pid}`).join(", ");
    throw new UserError(`${sessions.length} other session(s) are connected to the target (${who}) — stop the MLflow server first (the stack: docker compose stop mlflow), then re-run`);
  }
  const invalidText = findBadText(source, catalog, tables.map((t) => t.table));
  if (invalidText.length && !opts.replaceInvalidText) {
    throw new UserError(
      `${invalidText.length} text value(s) the target cannot hold as they are (e.g. ${invalidText.slice(0, 3).map(describeBadText).join("; ")}) — ` +
        `fix them in a copy of the source, or pass --replace-invalid-text to store them with U+FFFD in place of the bad bytes (each one is listed in the report); nothing was written`,
    );
  }
  const webhooks = source.tables.get("webhooks")?.columns.includes("url")
    ? (source.db.prepare(`select name, url, status from webhooks order by name`).all() as { name: string; url: string; status: string }[]).map((w) => ({
        ...w,
        copiedAs: !opts.keepWebhooksActive && w.status === "ACTIVE" ? "DISABLED" : w.status,
      }))
    : [];
  return {
    source: source.path,
    target: redactUrl(opts.to),
    alembicVersion: version,
    tables,
    totalRows: tables.reduce((a, t) => a + t.rows, 0),
    replace: existing.length > 0,
    targetUserData: existing,
    smokeLeftovers: leftovers,
    skippedSourceTables: skipped,
    invalidText,
    webhooks,
  };
}

export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  const started = performance.now();
  const emit = opts.onEvent ?? (() => {});
  let source = openSource(opts.from);
  let client: pg.Client | undefined;
  let upgraded: { path: string; cleanup(): void } | undefined;
  try {
    client = await connectTarget(opts.to, opts.password);
    const catalog = await readCatalog(client);
    const targetVersion = await targetAlembicVersion(client, catalog);
    if (opts.upgradeSource && targetVersion !== undefined && targetVersion !== source.alembicVersion) {
      upgraded = await opts.upgradeSource({ source: source.alembicVersion, target: targetVersion });
      source.close();
      source = openSource(upgraded.path);
    }
    const plan = await preflight(source, client, catalog, opts);
    if (upgraded) plan.source = `${opts.from} (a copy upgraded to schema ${source.alembicVersion})`;
    const result: MigrateResult = { plan, dryRun: !!opts.dryRun, committed: false, verified: [], sequences: [], locations: [], artifactsVerified: false, phases: [], seconds: 0, rowsPerSecond: 0 };
    result.phases.push({ phase: "open, connect, pre-flight", seconds: (performance.now() - started) / 1000 });
    if (opts.dryRun) return finish(result, started);
    if (opts.confirm && !(await opts.confirm(plan))) throw new UserError("cancelled; nothing was written");
    await opts.beforeCopy?.(plan);
    await copyAll(client, source, catalog, plan, opts, result, emit);
    return finish(result, started);
  } catch (error) {
    throw client ? targetFailure(opts.to, error) : error;
  } finally {
    source.close();
    upgraded?.cleanup();
    await client?.end().catch(() => {});
  }
}

function finish(result: MigrateResult, started: number): MigrateResult {
  result.seconds = (performance.now() - started) / 1000;
  result.rowsPerSecond = result.plan.totalRows / Math.max(result.seconds, 1e-9);
  return result;
}

async function copyAll(client: pg.Client, source: Source, catalog: Catalog, plan: Plan, opts: MigrateOptions, result: MigrateResult, emit: (e: MigrateEvent) => void) {
  const loaded = new Set(plan.tables.map((t) => t.table));
  const q = (sql: string) => client.query(sql);
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      const last = result.phases.at(-1);
      if (last?.phase === name) last.seconds += seconds;
      else result.phases.push({ phase: name, seconds });
    }
  };
  await q("begin");
  try {
    await q(`set local lock_timeout = ${Math.max(1, Math.round(opts.lockTimeoutMs ?? 10_000))}`);
    const list = [...loaded].map((t) => catalog.tables.get(t)!.qualified).join(", ");
    emit({ type: "phase", message: "locking the target tables" });
    await phase("lock and check", async () => {
      try {
        await q(`lock table ${list} in access exclusive mode`);
      } catch (error) {
        if ((error as { code?: string }).code === "55P03") {
          await q("rollback").catch(() => {});
          const others = await otherSessions(client).catch(() => []);
          const ours = others.find((s) => s.application === APPLICATION_NAME);
          throw new UserError(
            ours
              ? `the target tables are locked by another migration's session (pid ${ours.pid}) — wait for it, or end it with: select pg_terminate_backend(${ours.pid}); nothing was written`
              : `the target tables are in use (lock timeout) — stop the MLflow server first (docker compose stop mlflow); nothing was written`,
          );
        }
        throw error;
      }
      // Nobody can have written since the pre-flight check now; re-check under the lock.
      const now = await userData(client, catalog, await smokeLeftovers(client, catalog));
      if (now.length && !opts.replace) throw new UserError(`target is not empty any more (${now[0]}) — nothing was written`);
    });

    // Bare tables: foreign keys, then primary/unique keys and indexes go; rebuilt once after the load.
    emit({ type: "phase", message: "dropping keys and indexes for the bulk load (rebuilt before commit)" });
    const fks = catalog.foreignKeys;
    const keys = catalog.keys.filter((k) => loaded.has(k.table));
    const indexes = catalog.indexes.filter((i) => loaded.has(i.table));
    const qt = (t: string) => catalog.tables.get(t)!.qualified;
    await phase("drop keys and truncate", async () => {
      for (const fk of fks) await q(`alter table ${qt(fk.table)} drop constraint "${fk.name.replaceAll('"', '""')}"`);
      for (const k of keys) await q(`alter table ${qt(k.table)} drop constraint "${k.name.replaceAll('"', '""')}"`);
      for (const i of indexes) await q(`drop index ${catalog.schema === "public" ? "" : `"${catalog.schema}".`}"${i.name.replaceAll('"', '""')}"`);
      await q(`truncate ${list}`);
    });

    const rowHash = await chooseRowHash(client);
    const checksums = new Map<string, Checksum>();
    for (const { table, rows } of plan.tables) {
      const t0 = performance.now();
      emit({ type: "table-start", table, total: rows });
      const sum = await phase(rows >= BIG_TABLE ? `copy ${table}` : "copy small tables", () =>
        copyTable({
          client,
          db: source.db,
          sourcePath: source.path,
          table: catalog.tables.get(table)!,
          sourceColumns: source.tables.get(table)!.columns,
          total: rows,
          freeze: true,
          rowHash,
          lanes: opts.workers === undefined ? undefined : opts.workers + 1,
          paged: !plan.invalidText.some((b) => b.table === table),
          sqliteReader: opts.sqliteReader,
          onProgress: (p) => emit({ type: "table-progress", ...p }),
        }),
      );
      // The checksums compare what was read with what was stored; this compares what was read with the snapshot's count.
      if (sum.rows !== rows) throw new UserError(`read ${sum.rows} rows of ${table} but the source holds ${rows} — did something write to it meanwhile? Stop it and re-run; nothing was written`);
      checksums.set(table, sum);
      emit({ type: "table-done", table, rows: sum.rows, seconds: (performance.now() - t0) / 1000 });
    }

    emit({ type: "phase", message: `building ${keys.length} keys and ${indexes.length} indexes` });
    await phase("build keys and indexes", async () => {
      await buildKeysAndIndexes(client, keys, indexes, qt);
    });
    emit({ type: "phase", message: `validating ${fks.length} foreign keys` });
    await phase("validate foreign keys", async () => {
      for (const fk of fks) await q(fk.create);
    });

    result.sequences = await phase("reset sequences", () => resetSequences(client, catalog, loaded));

    emit({ type: "phase", message: "verifying row counts and checksums" });
    await phase("verify checksums", async () => {
      for (const { table } of plan.tables) {
        const t = catalog.tables.get(table)!;
        const cols = sharedColumns(t, source.tables.get(table)!.columns);
        const theirs = checksums.get(table)!;
        const ours = cols.length ? await targetChecksum(client, t, cols, rowHash) : { rows: 0, sum: "0" };
        result.verified.push(compare(table, theirs, ours));
      }
    });
    const bad = result.verified.filter((v) => !v.ok);
    if (bad.length) {
      throw new UserError(`verification failed for ${bad.map((b) => `${b.table} (rows ${b.sourceRows}/${b.targetRows})`).join(", ")} — rolled back, nothing was written`);
    }
    if (opts.locationRewrites?.size) {
      emit({ type: "phase", message: "rewriting artifact locations" });
      result.locations = await phase("rewrite artifact locations", () => rewriteLocations(client, catalog, opts.locationRewrites!));
    }
    // MLflow's WebhookStatus: ACTIVE or DISABLED (mlflow/entities/webhook.py; not verified against a running 3.11 here).
    const deactivate = plan.webhooks.filter((w) => w.copiedAs !== w.status);
    if (deactivate.length && catalog.tables.has("webhooks")) {
      await phase("deactivate webhooks", () => q(`update ${catalog.tables.get("webhooks")!.qualified} set status = 'DISABLED' where status = 'ACTIVE'`));
    }
    if (opts.beforeCommit) {
      emit({ type: "phase", message: "checking every planned artifact object in the bucket" });
      await phase("verify artifacts", opts.beforeCommit);
      result.artifactsVerified = true;
    }
    emit({ type: "phase", message: "committing" });
    await phase("commit", () => q("commit"));
    result.committed = true;
  } catch (error) {
    await q("rollback").catch(() => {});
    throw error;
  }
}

/** Tables with at least this many rows get their own line in the phase timings. */
const BIG_TABLE = 10_000;
