// `npm run move-objects`: every object of one bucket copied to another bucket, on another S3 server or the same one
// (issue 9: moving the artifacts off the old MinIO volume when the new server does not open it in place). Streams
// each object (multipart for large ones, as migrate uploads artifacts), a few at a time; an object the target already
// holds with the same size and ETag (or whose recorded source ETag matches: a multipart ETag depends on the part size)
// is skipped, so a re-run resumes. Afterwards the target is listed and checked: every source key there with the same
// size, the same object count and bytes. Objects only the target has are reported, never deleted.
import { GetObjectCommand, HeadBucketCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Readable } from "node:stream";
import { UserError } from "./cli.ts";
import { forEachLimited, listBucket, type BucketObject } from "./backup/objects.ts";
import { s3Failure } from "./migrate/artifacts.ts";
import { s3Client, type S3Endpoint } from "./s3-client.ts";

/** Metadata key (x-amz-meta-…) recording the source object's ETag on each copy. */
export const SOURCE_ETAG = "source-etag";

export interface BucketLocation extends S3Endpoint {
  endpoint?: string;
  bucket: string;
}

export interface MoveOptions {
  from: BucketLocation;
  to: BucketLocation;
  /** Objects copied at once (default 4). */
  concurrency?: number;
  /** Multipart part size in bytes (default 16 MiB). */
  partSize?: number;
  /** List and compare only: copy nothing. */
  dryRun?: boolean;
  onProgress?: (p: { done: number; total: number; copied: number; skipped: number; bytes: number }) => void;
}

export interface MoveResult {
  from: { endpoint?: string; bucket: string; objects: number; bytes: number };
  to: { endpoint?: string; bucket: string; objects: number; bytes: number };
  copied: number;
  copiedBytes: number;
  skipped: number;
  dryRun: boolean;
  /** Every source key is in the target with the same size; counts and bytes of those keys agree. */
  verified: boolean;
  /** Source keys missing from the target, or there with another size (empty when verified). */
  mismatches: string[];
  /** Keys only the target holds (left alone). */
  extra: number;
  seconds: number;
}

const label = (where: { bucket: string; endpoint?: string }) => `s3://${where.bucket}${where.endpoint ? ` at ${where.endpoint}` : ""}`;

async function checkBucket(s3: S3Client, where: BucketLocation, role: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: where.bucket }));
  } catch (error) {
    const e = s3Failure(error, `${role} ${label(where)}`);
    throw new UserError(e.message.replace("create it first (the stack's createbuckets job does)", role === "target" ? "create it first (the stack's createbuckets job does: docker compose up -d --wait)" : "check --from-bucket"));
  }
}

/** Whether the target's copy is the source object: same size, and its ETag or the recorded source ETag matches. */
async function sameObject(s3: S3Client, bucket: string, source: BucketObject, listed: BucketObject | undefined): Promise<boolean> {
  if (!listed || listed.size !== source.size) return false;
  if (listed.etag === source.etag) return true;
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: source.key }));
    return head.Metadata?.[SOURCE_ETAG] === source.etag;
  } catch {
    return false;
  }
}

export async function moveObjects(opts: MoveOptions): Promise<MoveResult> {
  const started = performance.now();
  if (opts.from.endpoint === opts.to.endpoint && opts.from.bucket === opts.to.bucket) {
    throw new UserError(`source and target are the same bucket (${label(opts.from)}) — give another --to-bucket or --to-endpoint`);
  }
  const source = s3Client(opts.from, 3);
  const target = s3Client(opts.to, 3);
  await checkBucket(source, opts.from, "source");
  await checkBucket(target, opts.to, "target");
  const objects = await listBucket(source, opts.from.bucket).catch((error) => {
    throw s3Failure(error, `listing ${label(opts.from)}`);
  });
  const before = new Map((await listBucket(target, opts.to.bucket)).map((o) => [o.key, o]));
  let copied = 0;
  let copiedBytes = 0;
  let skipped = 0;
  let done = 0;
  const tick = () => opts.onProgress?.({ done, total: objects.length, copied, skipped, bytes: copiedBytes });
  await forEachLimited(objects, opts.concurrency ?? 4, async (object) => {
    if (await sameObject(target, opts.to.bucket, object, before.get(object.key))) {
      skipped++;
    } else if (!opts.dryRun) {
      try {
        const got = await source.send(new GetObjectCommand({ Bucket: opts.from.bucket, Key: object.key }));
        await new Upload({
          client: target,
          partSize: opts.partSize ?? 16 * 1024 * 1024,
          queueSize: 2,
          params: {
            Bucket: opts.to.bucket,
            Key: object.key,
            Body: got.Body as Readable,
            ContentType: got.ContentType,
            Metadata: { ...got.Metadata, [SOURCE_ETAG]: object.etag },
          },
        }).done();
      } catch (error) {
        throw s3Failure(error, `copying ${object.key}`);
      }
      copied++;
      copiedBytes += object.size;
    }
    done++;
    tick();
  });
  // Verification from a fresh listing of the target, not from what the copy believed it did.
  const after = new Map((await listBucket(target, opts.to.bucket)).map((o) => [o.key, o]));
  const mismatches: string[] = [];
  let targetObjects = 0;
  let targetBytes = 0;
  for (const object of objects) {
    const there = after.get(object.key);
    if (!there) mismatches.push(`${object.key}: missing`);
    else if (there.size !== object.size) mismatches.push(`${object.key}: ${there.size} bytes, source ${object.size}`);
    if (there) {
      targetObjects++;
      targetBytes += there.size;
    }
  }
  const sourceKeys = new Set(objects.map((o) => o.key));
  const sourceBytes = objects.reduce((sum, o) => sum + o.size, 0);
  return {
    from: { endpoint: opts.from.endpoint, bucket: opts.from.bucket, objects: objects.length, bytes: sourceBytes },
    to: { endpoint: opts.to.endpoint, bucket: opts.to.bucket, objects: targetObjects, bytes: targetBytes },
    copied,
    copiedBytes,
    skipped,
    dryRun: opts.dryRun ?? false,
    verified: mismatches.length === 0 && targetObjects === objects.length && targetBytes === sourceBytes,
    mismatches,
    extra: [...after.keys()].filter((key) => !sourceKeys.has(key)).length,
    seconds: (performance.now() - started) / 1000,
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export function formatMoveSummary(r: MoveResult): string {
  const lines = [
    `source  ${label({ ...r.from })}: ${r.from.objects} objects, ${mib(r.from.bytes)}`,
    `target  ${label({ ...r.to })}: ${r.to.objects} of them, ${mib(r.to.bytes)}${r.extra ? ` (+${r.extra} objects only the target has, left alone)` : ""}`,
    `${r.dryRun ? "would copy" : "copied"} ${r.dryRun ? r.from.objects - r.skipped : r.copied} objects (${mib(r.copiedBytes)}), skipped ${r.skipped} already there, in ${r.seconds.toFixed(1)} s`,
  ];
  if (r.verified) lines.push("verified: every object is in the target with the same size; object count and bytes agree");
  else if (r.dryRun) lines.push(`not verified (dry run): ${r.mismatches.length} objects to copy`);
  else lines.push(`NOT verified: ${r.mismatches.slice(0, 5).join("; ")}${r.mismatches.length > 5 ? ` and ${r.mismatches.length - 5} more` : ""} — run again`);
  return lines.join("\n");
}
