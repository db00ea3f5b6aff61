// One restore: check everything that can be checked before touching anything (the manifest and its sha256, every
// part there with its size, tool and MLflow versions, an empty target), then the objects (resumable: a re-run skips
// what an interrupted one already put back) and the database AT THE SAME TIME, each part's sha256 checked as it
// streams; the database transaction commits only after every object is back and every checksum matched (a damaged part
// leaves the database as it was). Then compare row counts and object count/bytes with the manifest.
// The one extra pass an earlier version made (reading the whole backup for its checksums before restoring) cost as
// much as the restore's own reading; and restoring the objects and the database one after the other left the CPU idle.
import type { S3Client } from "@aws-sdk/client-s3";
import { pipeline } from "node:stream";
import type pg from "pg";
import { UserError } from "../cli.ts";
import { readCatalog, userData } from "../migrate/target.ts";
import { alembicRevision, checkToolVersion, lockDatabase, rowCounts, serverVersion, type PgTools } from "./database.ts";
import { parseManifest, type Manifest } from "./manifest.ts";
import { checkPartSizes, damaged, deleteObjects, foreignObjects, listBucket, restoreObjects, type ObjectsProgress } from "./objects.ts";
import { hashing, INCOMPLETE, MANIFEST, MANIFEST_SUM, type BackupStore } from "./store.ts";
import { compareVersions, isVersion } from "./versions.ts";

export interface RestoreOptions {
  store: BackupStore;
  name: string;
  connect: () => Promise<pg.Client>;
  tools: PgTools;
  s3: S3Client;
  bucket: string;
  /** MLFLOW_VERSION of the target stack, when known */
  targetVersion: string | null;
  replace: boolean;
  /** runs after every check passed, before the first write (the CLI stops MLflow there) */
  beforeWrite?: () => Promise<void>;
  onPhase?: (message: string) => void;
  onObjects?: ObjectsProgress;
  /** the database, for messages ("the local stack" / a redacted URL) */
  describe?: string;
}

export interface RestoreResult {
  name: string;
  from: string;
  manifest: Omit<Manifest, "objects"> & { objects: Omit<Manifest["objects"], "items"> };
  objects: { uploaded: number; skipped: number; deleted: number };
  verified: { tables: number; rows: number; objects: number; bytes: number };
  /** set when the backup is from an older MLflow: the schema must be upgraded before MLflow starts */
  needsUpgrade: string | null;
  seconds: number;
  /** seconds per phase: checks before writing; objects and database (run at the same time); verification after */
  phases: { checks: number; objects: number; database: number; verify: number };
}

export async function readManifest(store: BackupStore, name: string): Promise<Manifest> {
  const where = `${store.where}/${name}`;
  if (await store.has(name, INCOMPLETE)) throw new UserError(`${where} is an incomplete backup (it failed or was interrupted) — restore a complete one`);
  if (!(await store.has(name, MANIFEST))) throw new UserError(`${where} has no ${MANIFEST} — is this a backup folder (backups/<time>)?`);
  const sum = (await store.has(name, MANIFEST_SUM)) ? await store.readText(name, MANIFEST_SUM) : undefined;
  const manifest = parseManifest(await store.readText(name, MANIFEST), sum, where);
  if (manifest.name !== name) throw new UserError(`the manifest of ${where} names another backup (${manifest.name}) — it was moved by hand; put it back as ${manifest.name}`);
  return manifest;
}

/** What the versions say: undefined = fine; a string = the note for after the restore; throws when refused. */
export function versionVerdict(manifest: Manifest, targetVersion: string | null, targetRevision: string | null): string | null {
  const from = manifest.mlflowVersion;
  if (from && targetVersion && isVersion(from) && isVersion(targetVersion)) {
    const c = compareVersions(from, targetVersion);
    if (c > 0) throw new UserError(`the backup is from MLflow ${from}, NEWER than the stack's ${targetVersion} — upgrade the stack first (npm run upgrade -- --to ${from}), then restore; nothing was changed`);
    if (c < 0) return `the backup is from MLflow ${from} (schema ${manifest.alembicRevision}), older than the stack's ${targetVersion}: run docker compose run --rm mlflow db-upgrade before starting MLflow`;
    return null;
  }
  if (targetRevision && manifest.alembicRevision && targetRevision !== manifest.alembicRevision) {
    throw new UserError(`schema revisions differ (backup ${manifest.alembicRevision}, target ${targetRevision}) and the MLflow versions are unknown — restore into a stack running the backup's MLflow version; nothing was changed`);
  }
  return null;
}

export async function runRestore(o: RestoreOptions): Promise<RestoreResult> {
  // Shared on the backup folder (a --keep of a concurrent backup must not delete this backup); the database's advisory
  // lock for the whole restore, on a connection of its own.
  const folderLock = o.store.lock?.("shared", "a restore");
  try {
    const lock = await o.connect();
    try {
      await lockDatabase(lock, "restore", o.describe ?? "the database");
      return await restoreLocked(o);
    } finally {
      await lock.end().catch(() => {});
    }
  } finally {
    folderLock?.release();
  }
}

async function restoreLocked(o: RestoreOptions): Promise<RestoreResult> {
  const phase = o.onPhase ?? (() => {});
  const t0 = performance.now();
  const manifest = await readManifest(o.store, o.name);
  phase(`checking ${o.store.where}/${o.name}: manifest, every part and its size (sha256 while restoring)`);
  await checkPartSizes(o.store, manifest);

  const client = await o.connect();
  let needsUpgrade: string | null;
  let current;
  try {
    const server = await serverVersion(client);
    checkToolVersion(o.tools, server);
    const dumpedMajor = Number(/^(\d+)/.exec(manifest.postgres.serverVersion)?.[1] ?? 0);
    const toolMajor = o.tools.major();
    if (toolMajor !== undefined && toolMajor < dumpedMajor) {
      throw new UserError(`the backup was dumped from PostgreSQL ${manifest.postgres.serverVersion}; ${o.tools.describe} cannot read it — install PostgreSQL ${dumpedMajor}'s client tools; nothing was changed`);
    }
    if (server.major < dumpedMajor) phase(`note: restoring a PostgreSQL ${manifest.postgres.serverVersion} dump into PostgreSQL ${server.text}`);
    const revision = await alembicRevision(client);
    needsUpgrade = versionVerdict(manifest, o.targetVersion, revision);
    const catalog = await readCatalog(client);
    const data = await userData(client, catalog);
    current = await listBucket(o.s3, o.bucket);
    const foreign = foreignObjects(current, manifest);
    if ((data.length || foreign.length) && !o.replace) {
      const what = [...data.slice(0, 3), ...(foreign.length ? [`bucket ${o.bucket}: ${foreign.length} object(s) not in the backup`] : [])].join(", ");
      throw new UserError(`the target holds data (${what}) — restore into an empty stack, or pass --replace to overwrite it; nothing was changed`);
    }
  } finally {
    await client.end().catch(() => {});
  }

  await o.beforeWrite?.();
  const checked = performance.now();
  phase(`restoring ${manifest.objects.count} objects (${manifest.objects.bytes} bytes) into bucket ${o.bucket} and the database (one transaction, committed only when every part matched its sha256), at the same time`);
  let objectsSeconds = 0;
  let databaseSeconds = 0;
  const objectsDone = restoreObjects({ s3: o.s3, bucket: o.bucket, store: o.store, manifest, current, onProgress: o.onObjects }).finally(() => {
    objectsSeconds = (performance.now() - checked) / 1000;
  });
  objectsDone.catch(() => {}); // judged below, after the database side settled too
  const dumpHash = hashing();
  const commit = () => objectsDone.then(() => {
    const got = dumpHash.result();
    if (got.sha256 !== manifest.database.sha256 || got.bytes !== manifest.database.bytes) {
      throw damaged("the database dump", `${o.store.where}/${o.name}`, got, { bytes: manifest.database.bytes, sha256: manifest.database.sha256 });
    }
  });
  const database = o.tools
    .restore(pipeline(await o.store.read(o.name, manifest.database.file), dumpHash, () => {}), commit)
    .finally(() => (databaseSeconds = (performance.now() - checked) / 1000));
  const [objectsResult, databaseResult] = await Promise.allSettled([objectsDone, database]);
  // An object's failure reaches the database as the rejected commit gate too: report it once, as itself.
  if (objectsResult.status === "rejected") throw objectsResult.reason;
  if (databaseResult.status === "rejected") throw databaseResult.reason;
  const objects = objectsResult.value;
  phase(`objects back in ${objectsSeconds.toFixed(1)} s; database committed after ${databaseSeconds.toFixed(1)} s`);
  const wanted = new Set(manifest.objects.items.map((i) => i.key));
  const extra = current.filter((c) => !wanted.has(c.key)).map((c) => c.key);
  if (extra.length) {
    phase(`--replace: deleting ${extra.length} objects that are not in the backup`);
    await deleteObjects(o.s3, o.bucket, extra);
  }

  const written = performance.now();
  phase("verifying row counts and objects against the manifest");
  const check = await o.connect();
  let counts: Record<string, number>;
  try {
    counts = await rowCounts(check);
  } finally {
    await check.end().catch(() => {});
  }
  const wrong = Object.entries(manifest.database.tables).filter(([t, n]) => counts[t] !== n);
  if (wrong.length) {
    throw new UserError(`restored row counts differ from the manifest (${wrong.slice(0, 3).map(([t, n]) => `${t}: ${counts[t] ?? "missing"}, expected ${n}`).join("; ")}) — the restore is not trustworthy; run it again with --replace`);
  }
  const after = await listBucket(o.s3, o.bucket);
  const sizes = new Map(after.map((a) => [a.key, a.size]));
  const missing = manifest.objects.items.filter((i) => sizes.get(i.key) !== i.size);
  const bytes = after.reduce((n, a) => n + a.size, 0);
  if (missing.length || after.length !== manifest.objects.count || bytes !== manifest.objects.bytes) {
    throw new UserError(`the bucket holds ${after.length} objects / ${bytes} bytes after the restore, the manifest ${manifest.objects.count} / ${manifest.objects.bytes}${missing.length ? ` (e.g. ${missing[0].key})` : ""} — run the restore again (it resumes)`);
  }
  const { items: _items, ...objectSummary } = manifest.objects;
  return {
    name: manifest.name,
    from: o.store.where,
    manifest: { ...manifest, objects: objectSummary },
    objects: { ...objects, deleted: extra.length },
    verified: { tables: Object.keys(manifest.database.tables).length, rows: Object.values(counts).reduce((a, b) => a + b, 0), objects: after.length, bytes },
    needsUpgrade,
    seconds: (performance.now() - t0) / 1000,
    phases: { checks: (checked - t0) / 1000, objects: objectsSeconds, database: databaseSeconds, verify: (performance.now() - written) / 1000 },
  };
}
