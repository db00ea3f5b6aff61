// The artifact side: every object of the stack's bucket into the backup (streamed, a few at a time), and back.
// Incremental: an object the previous complete backup holds with the same size and ETag is not sent again; its file is
// reused (hard link / server-side copy), and the new manifest still lists it, so every backup is whole on its own and
// pruning one never touches another.
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Readable } from "node:stream";
import { UserError } from "../cli.ts";
import type { Manifest, ObjectEntry } from "./manifest.ts";
import { hashing, objectFile, type BackupStore } from "./store.ts";

export interface BucketObject {
  key: string;
  size: number;
  etag: string;
}

export function bucketFailure(bucket: string, error: unknown): UserError {
  const e = error as { name?: string; message?: string; code?: string };
  if (e.name === "NoSuchBucket") return new UserError(`bucket ${bucket} does not exist — check --bucket (or MLFLOW_BUCKET in .env)`);
  return new UserError(`cannot reach the bucket ${bucket}: ${e.name ?? e.code ?? ""} ${e.message ?? ""}`.trim() + " — check --s3-endpoint and the S3 credentials");
}

export async function listBucket(s3: S3Client, bucket: string): Promise<BucketObject[]> {
  const out: BucketObject[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token })).catch((e) => {
      throw bucketFailure(bucket, e);
    });
    for (const c of r.Contents ?? []) out.push({ key: c.Key!, size: c.Size ?? 0, etag: (c.ETag ?? "").replaceAll('"', "") });
    token = r.NextContinuationToken;
  } while (token);
  return out;
}

/** Runs `work` over `items` with at most `limit` at a time; the first failure stops new work and is thrown. */
export async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (error) {
        failed ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed !== undefined) throw failed;
}

export interface ObjectsProgress {
  (done: { objects: number; bytes: number; total: number; totalBytes: number }): void;
}

export async function backupObjects(opts: {
  s3: S3Client;
  bucket: string;
  store: BackupStore;
  name: string;
  previous?: Manifest;
  concurrency?: number;
  onProgress?: ObjectsProgress;
}): Promise<{ items: ObjectEntry[]; copied: number; reused: number; bytes: number }> {
  const { s3, bucket, store, name, previous } = opts;
  const objects = await listBucket(s3, bucket);
  const before = new Map((previous?.objects.items ?? []).map((i) => [i.key, i]));
  const items: ObjectEntry[] = new Array(objects.length);
  const totalBytes = objects.reduce((n, o) => n + o.size, 0);
  let copied = 0;
  let reused = 0;
  let done = 0;
  let doneBytes = 0;
  const indexed = objects.map((o, i) => ({ o, i }));
  await forEachLimited(indexed, opts.concurrency ?? 4, async ({ o, i }) => {
    const file = objectFile(o.key);
    const old = before.get(o.key);
    if (old && previous && old.size === o.size && old.etag === o.etag && old.file === file) {
      try {
        await store.reuse(previous.name, name, file);
        items[i] = { ...old };
        reused++;
        done++;
        doneBytes += o.size;
        opts.onProgress?.({ objects: done, bytes: doneBytes, total: objects.length, totalBytes });
        return;
      } catch {
        // the previous file is gone: copy it again
      }
    }
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.key })).catch((e) => {
      throw bucketFailure(bucket, e);
    });
    const written = await store.write(name, file, r.Body as Readable);
    if (written.bytes !== o.size) throw new UserError(`object ${o.key} changed while it was read (${written.bytes} bytes, listed with ${o.size}) — run the backup again`);
    items[i] = { key: o.key, size: o.size, etag: o.etag, sha256: written.sha256, file };
    copied++;
    done++;
    doneBytes += o.size;
    opts.onProgress?.({ objects: done, bytes: doneBytes, total: objects.length, totalBytes });
  });
  return { items, copied, reused, bytes: totalBytes };
}

/** Metadata our restore puts on each object: a re-run skips objects it already restored (resumable). */
const SHA_META = "backup-sha256";
const SINGLE_PUT_MAX = 1 << 30;

/** The one-line refusal for a part of a backup that is not what its manifest says. */
export function damaged(what: string, where: string, got: { bytes: number; sha256?: string }, expected: { bytes: number; sha256: string }): UserError {
  const sums = got.sha256 ? `, sha256 ${got.sha256.slice(0, 12)}…; expected ${expected.bytes} bytes, ${expected.sha256.slice(0, 12)}…` : `; expected ${expected.bytes} bytes`;
  return new UserError(`${what} in ${where} does not match the manifest (${got.bytes} bytes${sums}) — the backup is damaged; use another one`);
}

/**
 * Checks that every part of the backup is there with its size (a stat or HEAD each, no reading): a truncated or
 * missing part is refused before anything is written. The sha256 of each part is checked while the restore streams it.
 */
export async function checkPartSizes(store: BackupStore, manifest: Manifest): Promise<void> {
  const name = manifest.name;
  const where = `${store.where}/${name}`;
  const check = async (file: string, bytes: number, sha256: string, what: string) => {
    const size = await store.size(name, file);
    if (size === undefined) throw new UserError(`${what} is missing from ${where} (${file}) — the backup is damaged; use another one`);
    if (size !== bytes) throw damaged(what, where, { bytes: size }, { bytes, sha256 });
  };
  await check(manifest.database.file, manifest.database.bytes, manifest.database.sha256, "the database dump");
  await forEachLimited(manifest.objects.items, 16, (item) => check(item.file, item.size, item.sha256, `object ${item.key}`));
}

/** Keys in the bucket that the restore would not put there itself (data of its own: the target is not empty). */
export function foreignObjects(current: BucketObject[], manifest: Manifest): BucketObject[] {
  const wanted = new Map(manifest.objects.items.map((i) => [i.key, i.size]));
  return current.filter((o) => wanted.get(o.key) !== o.size);
}

export async function restoreObjects(opts: {
  s3: S3Client;
  bucket: string;
  store: BackupStore;
  manifest: Manifest;
  current: BucketObject[];
  concurrency?: number;
  onProgress?: ObjectsProgress;
}): Promise<{ uploaded: number; skipped: number }> {
  const { s3, bucket, store, manifest } = opts;
  const present = new Map(opts.current.map((o) => [o.key, o]));
  let uploaded = 0;
  let skipped = 0;
  let done = 0;
  let bytes = 0;
  await forEachLimited(manifest.objects.items, opts.concurrency ?? 4, async (item) => {
    const have = present.get(item.key);
    let same = false;
    if (have && have.size === item.size) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: item.key })).catch((e) => {
        throw bucketFailure(bucket, e);
      });
      same = head.Metadata?.[SHA_META] === item.sha256;
    }
    if (same) {
      // Already back (an earlier, interrupted run): not sent again, but the backup's part is still checked, so that
      // a damaged backup is refused whatever the target holds.
      const h = hashing();
      for await (const _ of (await store.read(manifest.name, item.file)).pipe(h)) void _;
      const got = h.result();
      if (got.sha256 !== item.sha256) throw damaged(`object ${item.key}`, `${store.where}/${manifest.name}`, got, { bytes: item.size, sha256: item.sha256 });
      skipped++;
    } else {
      const h = hashing();
      const body = (await store.read(manifest.name, item.file)).pipe(h);
      const params = { Bucket: bucket, Key: item.key, Body: body, Metadata: { [SHA_META]: item.sha256 } };
      // Up to 1 GiB: one PUT that streams the file with its known length (flat memory); bigger: multipart (8 MiB parts).
      const sending =
        item.size <= SINGLE_PUT_MAX ? s3.send(new PutObjectCommand({ ...params, ContentLength: item.size })) : new Upload({ client: s3, params, queueSize: 1, partSize: 8 << 20 }).done();
      await sending.catch((e) => {
        throw bucketFailure(bucket, e);
      });
      const got = h.result();
      if (got.sha256 !== item.sha256) {
        // Checked while it streamed: the bad copy must not stay (its metadata would make a re-run skip it).
        await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: item.key }] } })).catch(() => {});
        throw damaged(`object ${item.key}`, `${store.where}/${manifest.name}`, got, { bytes: item.size, sha256: item.sha256 });
      }
      uploaded++;
    }
    done++;
    bytes += item.size;
    opts.onProgress?.({ objects: done, bytes, total: manifest.objects.count, totalBytes: manifest.objects.bytes });
  });
  return { uploaded, skipped };
}

export async function deleteObjects(s3: S3Client, bucket: string, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } })).catch((e) => {
      throw bucketFailure(bucket, e);
    });
  }
}
