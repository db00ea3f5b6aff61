// Artifacts: every file of the local artifact folder goes to the stack's bucket under the same relative path
// (mlflow-artifacts:/<path> is served from s3://<bucket>/<path>). Multipart for large files, bounded concurrency,
// and an object that is already there with the same size and sha256 (our metadata) is skipped: a re-run resumes.
import { HeadBucketCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { s3Client } from "../s3-client.ts";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { UserError } from "../cli.ts";
import { inferArtifactRoot, LOCATION_COLUMNS, relativeToRoot } from "./locations.ts";
import { openSource, quoteSqlite } from "./source.ts";

export interface ArtifactOptions {
  dir?: string;
  root?: string;
  endpoint?: string;
  bucket?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  concurrency?: number;
  partSize?: number;
}

export interface ArtifactPlan {
  dir: string;
  /** The path the source database recorded for `dir`. */
  root: string;
  bucket: string;
  files: number;
  bytes: number;
  /** Locations in the database whose files are not in `dir` (e.g. runs that logged no artifacts). */
  missing: string[];
}

export interface ArtifactResult {
  uploaded: number;
  skipped: number;
  bytesUploaded: number;
}

interface LocalFile {
  abs: string;
  key: string;
  size: number;
}

function walk(dir: string): LocalFile[] {
  const out: LocalFile[] = [];
  const visit = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (error) {
      throw new UserError(`cannot read artifacts folder ${d}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    for (const e of entries) {
      const abs = join(d, e.name);
      if (e.isDirectory()) visit(abs);
      else if (e.isFile()) out.push({ abs, key: relative(dir, abs).split(sep).join("/"), size: statSync(abs).size });
    }
  };
  visit(dir);
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function s3Failure(error: unknown, what: string): UserError {
  const e = error as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (e.name === "NotFound" || e.name === "NoSuchBucket" || status === 404) return new UserError(`${what}: bucket not found — create it first (the stack's createbuckets job does)`);
  if (status === 403 || e.name === "InvalidAccessKeyId" || e.name === "SignatureDoesNotMatch") return new UserError(`${what}: access denied — check AWS_ACCESS_KEY_ID / the S3 secret`);
  return new UserError(`${what}: ${e.name ?? "error"} ${e.message ?? ""}`.trim());
}

/**
 * Plans the artifact move (nothing is written): finds the folder and the root the database recorded, lists the
 * files, checks the bucket. Undefined when there is nothing to move (no local locations, no --artifacts).
 */
export async function prepareArtifacts(from: string, opts: ArtifactOptions | undefined, log: (m: string) => void) {
  if (!opts) return undefined;
  const source = openSource(from);
  let experimentLocations: string[];
  const locations: string[] = [];
  try {
    experimentLocations = source.db.prepare(`select artifact_location from experiments where artifact_location is not null`).pluck().all() as string[];
    for (const { table, column, where } of LOCATION_COLUMNS) {
      const t = source.tables.get(table);
      if (!t || !t.columns.includes(column)) continue;
      locations.push(...(source.db.prepare(`select ${quoteSqlite(column)} from ${quoteSqlite(table)} where ${quoteSqlite(column)} is not null${where ? ` and ${where}` : ""}`).pluck().all() as string[]));
    }
  } finally {
    source.close();
  }
  const root = opts.root ?? inferArtifactRoot(experimentLocations);
  let dir = opts.dir;
  if (dir === undefined) {
    if (root === undefined) return undefined; // the database points at no local files
    if (!existsSync(root)) {
      throw new UserError(`the database's artifacts are under ${root}, which does not exist here — pass --artifacts DIR (that folder, copied here) or --no-artifacts`);
    }
    dir = root;
  }
  dir = resolve(dir);
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(`artifacts folder not found: ${dir}`);
  }
  if (!st.isDirectory()) throw new UserError(`--artifacts must be a folder: ${dir}`);
  if (!opts.bucket) throw new UserError("no bucket for the artifacts: pass --bucket or set MLFLOW_BUCKET (or --no-artifacts)");
  if (!opts.accessKeyId || !opts.secretAccessKey) throw new UserError("no S3 keys for the artifacts: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-secret-file), or pass --no-artifacts");
  const files = walk(dir);
  const effectiveRoot = root ?? dir;
  const missing = [...new Set(locations)].filter((loc) => {
    const rel = relativeToRoot(loc, effectiveRoot);
    return rel !== undefined && !existsSync(join(dir!, rel));
  });
  const client = s3Client({ endpoint: opts.endpoint, region: opts.region, accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }, 3);
  try {
    await client.send(new HeadBucketCommand({ Bucket: opts.bucket }));
  } catch (error) {
    client.destroy();
    throw s3Failure(error, `bucket ${opts.bucket}${opts.endpoint ? ` at ${opts.endpoint}` : ""}`);
  }
  const plan: ArtifactPlan = { dir, root: effectiveRoot, bucket: opts.bucket, files: files.length, bytes: files.reduce((a, f) => a + f.size, 0), missing };
  log(`artifacts: ${plan.files} files (${plan.bytes} bytes) in ${dir} -> s3://${plan.bucket}/ (recorded as ${effectiveRoot})`);
  let result: ArtifactResult | undefined;
  const bucket = opts.bucket;
  return {
    plan,
    result: () => result,
    close: () => client.destroy(),
    /** Uploads what is not there yet; throws a UserError that says a re-run resumes. */
    upload: async (progress: (m: string) => void): Promise<ArtifactResult> => {
      const r: ArtifactResult = { uploaded: 0, skipped: 0, bytesUploaded: 0 };
      let next = 0;
      let lastLog = 0;
      const one = async (f: LocalFile) => {
        const sha = await sha256File(f.abs);
        try {
          const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: f.key }));
          if (head.ContentLength === f.size && head.Metadata?.sha256 === sha) {
            r.skipped++;
            return;
          }
        } catch (error) {
          const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
          if (status !== 404) throw error;
        }
        const upload = new Upload({
          client,
          params: { Bucket: bucket, Key: f.key, Body: createReadStream(f.abs), ContentLength: f.size, Metadata: { sha256: sha } },
          partSize: opts.partSize ?? 16 * 1024 * 1024,
          queueSize: 2,
          leavePartsOnError: false,
        });
        await upload.done();
        r.uploaded++;
        r.bytesUploaded += f.size;
      };
      const worker = async () => {
        while (next < files.length) {
          const f = files[next++];
          try {
            await one(f);
          } catch (error) {
            throw s3Failure(error, `upload of ${f.key} failed (re-run to resume: finished files are skipped)`);
          }
          if (Date.now() - lastLog > 2000) {
            lastLog = Date.now();
            progress(`artifacts: ${r.uploaded + r.skipped}/${files.length} files`);
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
      } finally {
        client.destroy();
      }
      progress(`artifacts: ${r.uploaded} uploaded (${r.bytesUploaded} bytes), ${r.skipped} already there`);
      result = r;
      return r;
    },
  };
}
