// One backup: database first (one snapshot: dump + row counts + schema revision), then every object of the bucket
// (MLflow only adds objects while it runs, so every artifact the dump references is in the bucket by then), then the
// manifest. The INCOMPLETE marker is written before anything else and removed only after the manifest: a backup that
// fails or is killed stays marked, and never counts as the previous backup or for --keep.
import type { S3Client } from "@aws-sdk/client-s3";
import type pg from "pg";
import { UserError } from "../cli.ts";
import { alembicRevision, checkToolVersion, exportSnapshot, lockDatabase, rowCounts, serverVersion, type PgTools } from "./database.ts";
import { FORMAT, listBackups, serialize, toPrune, type Manifest } from "./manifest.ts";
import { backupObjects, type ObjectsProgress } from "./objects.ts";
import { backupName, DUMP, INCOMPLETE, MANIFEST, MANIFEST_SUM, type BackupStore } from "./store.ts";

export const SECRETS_NOTE = "not included: .env and secrets/ stay with the stack; a restore uses the target stack's own secrets";

export interface BackupOptions {
  connect: () => Promise<pg.Client>;
  tools: PgTools;
  s3: S3Client;
  bucket: string;
  store: BackupStore;
  mlflowVersion: string | null;
  /** prune complete backups beyond this many (oldest first) */
  keep?: number;
  concurrency?: number;
  now?: () => Date;
  onPhase?: (message: string) => void;
  onObjects?: ObjectsProgress;
  /** the database, for messages ("the local stack" / a redacted URL) */
  describe?: string;
}

export interface BackupResult {
  name: string;
  where: string;
  manifest: Manifest;
  previous: string | null;
  pruned: string[];
  /** incomplete backups found in the destination (left alone) */
  incomplete: string[];
  seconds: number;
}

export async function runBackup(o: BackupOptions): Promise<BackupResult> {
  const phase = o.onPhase ?? (() => {});
  const t0 = performance.now();
  if (o.keep !== undefined && (!Number.isInteger(o.keep) || o.keep < 1)) throw new UserError(`--keep must be a whole number of at least 1, got ${o.keep}`);
  await o.store.probe();
  // One backup at a time per destination folder (it may prune) and per database (the advisory lock, below).
  const folderLock = o.store.lock?.("exclusive", "a backup");
  try {
    return await backupLocked(o, phase, t0);
  } finally {
    folderLock?.release();
  }
}

async function backupLocked(o: BackupOptions, phase: (m: string) => void, t0: number): Promise<BackupResult> {
  const existing = await listBackups(o.store);
  const previous = existing.filter((b) => b.complete).at(-1);
  const incomplete = existing.filter((b) => !b.complete).map((b) => b.name);
  const client = await o.connect();
  try {
    await lockDatabase(client, "backup", o.describe ?? "the database");
    const server = await serverVersion(client);
    checkToolVersion(o.tools, server);
    const started = (o.now ?? (() => new Date()))();
    let name = backupName(started);
    const taken = new Set(existing.map((b) => b.name));
    for (let n = 1; taken.has(name); n++) name = `${backupName(started)}-${n}`;
    await o.store.writeText(name, INCOMPLETE, `backup started at ${started.toISOString()}; this file is removed when it completes\n`);
    phase(`backing up into ${o.store.where}/${name}${previous ? ` (objects unchanged since ${previous.name} are reused)` : ""}`);

    const snapshot = await exportSnapshot(client);
    let tables: Record<string, number>;
    let revision: string | null;
    let dumped;
    try {
      phase("dumping the database (pg_dump custom format, one snapshot)");
      const dump = o.tools.dump(snapshot.id);
      const writing = o.store.write(name, DUMP, dump.stdout).catch((error) => {
        dump.stdout.destroy();
        throw error;
      });
      [dumped] = await Promise.all([writing, dump.done]);
      tables = await rowCounts(client);
      revision = await alembicRevision(client);
    } finally {
      await snapshot.end().catch(() => {});
    }
    phase(`database: ${dumped.bytes} bytes, ${Object.values(tables).reduce((a, b) => a + b, 0)} rows in ${Object.keys(tables).length} tables`);

    phase(`copying the objects of bucket ${o.bucket}`);
    const objects = await backupObjects({ s3: o.s3, bucket: o.bucket, store: o.store, name, previous: previous?.manifest, concurrency: o.concurrency, onProgress: o.onObjects });
    const manifest: Manifest = {
      format: FORMAT,
      name,
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      mlflowVersion: o.mlflowVersion,
      alembicRevision: revision,
      postgres: { serverVersion: server.text, dumpedWith: o.tools.describe },
      database: { file: DUMP, bytes: dumped.bytes, sha256: dumped.sha256, tables },
      objects: { bucket: o.bucket, count: objects.items.length, bytes: objects.bytes, copied: objects.copied, reused: objects.reused, items: objects.items },
      secrets: SECRETS_NOTE,
    };
    const { text, sum } = serialize(manifest);
    await o.store.writeText(name, MANIFEST, text);
    await o.store.writeText(name, MANIFEST_SUM, sum);
    await o.store.remove(name, INCOMPLETE);

    let pruned: string[] = [];
    if (o.keep !== undefined) {
      pruned = toPrune(await listBackups(o.store), o.keep);
      for (const p of pruned) {
        phase(`pruning ${p} (--keep ${o.keep})`);
        await o.store.removeBackup(p);
      }
    }
    return { name, where: o.store.where, manifest, previous: previous?.name ?? null, pruned, incomplete, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await client.end().catch(() => {});
  }
}
