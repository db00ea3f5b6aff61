// Artifacts: the plan (made before anything is written), the upload and the check that every planned object is in
// the bucket. Every location the database holds is read and classified (locations.ts); local (file://, bare path) and
// server-managed (mlflow-artifacts:/) ones are resolved to a folder under ONE artifact root here (--artifacts DIR,
// recorded as --artifact-root PATH), walked following symbolic links, and uploaded to s3://<bucket>/<key> where the
// key and the rewritten location come from `placement`. A live run or model whose location points at nothing stops
// the migration before anything is written, unless the user accepts it (--allow-missing-artifacts).
// Multipart for large files, bounded concurrency, and an object already there with the same size and sha256 (our
// metadata) is skipped: a re-run resumes.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { UserError } from "../cli.ts";
import { classify, inferArtifactRoot, LOCATION_COLUMNS, placement, relativeToRoot, type LocationKind } from "./locations.ts";
import { openSource, quoteSqlite } from "./source.ts";

export interface ArtifactOptions {
  /** The artifact folder here (the old --artifacts-destination, or the folder the file:// locations name). */
  dir?: string;
  /** The path the database recorded for `dir` (file:// locations); default: inferred from the experiments. */
  root?: string;
  /** Accept live runs/models whose location points at nothing (reported). */
  allowMissing?: boolean;
  endpoint?: string;
  bucket?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  concurrency?: number;
  partSize?: number;
}

/** One row's location. */
export interface LocationRow {
  table: string;
  column: string;
  id: string;
  live: boolean;
  /** A run's or model's folder (a live one must exist); experiments and traces may have none. */
  required: boolean;
  location: string;
}

export interface MissingLocation extends LocationRow {
  /** What was looked for: a path here, or why it cannot be resolved. */
  reason: string;
}

export interface ArtifactPlan {
  /** The folder read here, and the path the database recorded for it (undefined: no file:// locations). */
  dir?: string;
  root?: string;
  bucket?: string;
  /** Distinct locations by kind (local = file:// or a path, server = mlflow-artifacts:/, remote = s3:// gs:// …, reference = models:/ runs:/ …). */
  kinds: Record<LocationKind, number>;
  files: number;
  bytes: number;
  /** Locations (one per row) whose folder is not there; `live` ones stop the migration unless allowed. */
  missing: MissingLocation[];
  /** Remote locations, kept as they are (the stack must be able to reach them). */
  remote: string[];
  /** Distinct locations rewritten to mlflow-artifacts:/ (file:// ones below the root). */
  rewritten: number;
  allowMissing: boolean;
  /** true with --no-artifacts: nothing is uploaded or rewritten. */
  skipped: boolean;
}

export interface ArtifactResult {
  uploaded: number;
  skipped: number;
  bytesUploaded: number;
  /** Objects checked in the bucket (size, and sha256/ETag) before the commit. */
  verified: number;
}

interface LocalFile {
  abs: string;
  key: string;
  size: number;
  sha256?: string;
  md5?: string;
}

/** Every location the source database holds, one per row, with whether its row is live. */
export function readLocations(from: string): LocationRow[] {
  const source = openSource(from);
  const rows: LocationRow[] = [];
  try {
    for (const { table, column, id, live, required, where } of LOCATION_COLUMNS) {
      const t = source.tables.get(table);
      if (!t || !t.columns.includes(column)) continue;
      // An older schema without the stage column: every row counts as live (the stricter reading).
      const liveSql = live.split(/\b/).some((w) => /^(lifecycle_stage|current_stage)$/.test(w) && !t.columns.includes(w)) ? "1 = 1" : live;
      const sql = `select cast(${id} as text) as id, ${quoteSqlite(column)} as location, (${liveSql}) as live from ${quoteSqlite(table)}
        where ${quoteSqlite(column)} is not null and ${quoteSqlite(column)} <> ''${where ? ` and ${where}` : ""}`;
      for (const r of source.db.prepare(sql).all() as { id: string; location: unknown; live: bigint | number }[]) {
        if (typeof r.location !== "string") continue; // a BLOB: the text check reports it
        rows.push({ table, column, id: String(r.id), live: Number(r.live) === 1, required, location: r.location });
      }
    }
  } finally {
    source.close();
  }
  return rows;
}

function countKinds(rows: LocationRow[]): Record<LocationKind, number> {
  const kinds: Record<LocationKind, number> = { local: 0, server: 0, remote: 0, reference: 0 };
  for (const l of new Set(rows.map((r) => r.location))) kinds[classify(l).kind]++;
  return kinds;
}

/** The plan with --no-artifacts: what the locations are, nothing moved or rewritten. */
export function surveyArtifacts(from: string): ArtifactPlan {
  const rows = readLocations(from);
  const kinds = countKinds(rows);
  const missing = rows
    .filter((r) => r.live && r.required && ["local", "server"].includes(classify(r.location).kind))
    .map((r) => ({ table: r.table, column: r.column, id: r.id, live: r.live, required: r.required, location: r.location, reason: "--no-artifacts: not copied" }));
  return { kinds, files: 0, bytes: 0, missing, remote: remoteOf(rows), rewritten: 0, allowMissing: true, skipped: true };
}

function remoteOf(rows: LocationRow[]): string[] {
  return [...new Set(rows.map((r) => r.location).filter((l) => classify(l).kind === "remote"))].sort();
}

/**
 * Lists the files below `start` (a file or folder inside `top`), following symbolic links. A link that leaves `top`,
 * a dangling link and a loop are errors naming the link.
 */
function walk(top: string, start: string, key: string, into: Map<string, LocalFile>) {
  const realTop = realpathSync(top);
  const inside = (p: string) => p === realTop || p.startsWith(realTop + sep);
  const visit = (abs: string, k: string, ancestors: Set<string>) => {
    let real: string;
    let st;
    try {
      real = realpathSync(abs);
      st = statSync(real);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ELOOP") {
        let target = "";
        try {
          target = ` -> ${readlinkSync(abs)}`;
        } catch {}
        throw new UserError(`artifact link ${abs}${target} ${code === "ELOOP" ? "loops" : "points at nothing"} — fix or remove it, then re-run; nothing was written`);
      }
      throw new UserError(`cannot read ${abs}: ${code ?? error} — nothing was written`);
    }
    if (!inside(real)) {
      throw new UserError(
        `artifact link ${abs} -> ${real} leaves the artifact folder ${top} — copy what it points at into the folder (cp -L), or pass --artifacts a folder that holds both; nothing was written`,
      );
    }
    if (st.isDirectory()) {
      if (ancestors.has(real)) throw new UserError(`artifact link ${abs} loops (back to ${real}) — remove it, then re-run; nothing was written`);
      let entries: string[];
      try {
        entries = readdirSync(abs);
      } catch (error) {
        throw new UserError(`cannot read artifact folder ${abs}: ${(error as NodeJS.ErrnoException).code ?? error} — nothing was written`);
      }
      const next = new Set(ancestors).add(real);
      for (const name of entries.sort()) visit(join(abs, name), k === "" ? name : `${k}/${name}`, next);
    } else if (st.isFile()) {
      const fileKey = placement(k).key;
      if (!into.has(fileKey)) into.set(fileKey, { abs, key: fileKey, size: st.size });
    }
    // sockets, fifos, devices: not artifacts
  };
  visit(start, key, new Set());
}

/** Suggests the right folder when `rel` is not below `dir` but is below a child of it or below its parent. */
function suggestDir(dir: string, rel: string): string | undefined {
  if (!rel) return undefined;
  try {
    for (const child of readdirSync(dir, { withFileTypes: true })) {
      if (child.isDirectory() && existsSync(join(dir, child.name, rel))) return join(dir, child.name);
    }
  } catch {}
  for (let up = dir, i = 0; i < 3; i++) {
    const parent = dirname(up);
    if (parent === up) break;
    if (existsSync(join(parent, rel))) return parent;
    up = parent;
  }
  return undefined;
}

async function hashFile(path: string): Promise<{ sha256: string; md5: string }> {
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  for await (const chunk of createReadStream(path)) {
    sha.update(chunk as Buffer);
    md5.update(chunk as Buffer);
  }
  return { sha256: sha.digest("hex"), md5: md5.digest("hex") };
}

const NETWORK = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "ECONNRESET", "EAI_AGAIN", "EADDRNOTAVAIL"]);

export function s3Failure(error: unknown, what: string): UserError {
  if (error instanceof UserError) return error;
  const e = error as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (e.code && NETWORK.has(e.code)) return new UserError(`${what}: cannot reach the S3 server (${e.code}) — is it running and is --s3-endpoint right?`);
  if (e.name === "NotFound" || e.name === "NoSuchBucket" || status === 404) return new UserError(`${what}: bucket not found — create it first (the stack's createbuckets job does)`);
  if (status === 403 || e.name === "InvalidAccessKeyId" || e.name === "SignatureDoesNotMatch") return new UserError(`${what}: access denied — check AWS_ACCESS_KEY_ID / the S3 secret`);
  return new UserError(`${what}: ${e.name ?? "error"} ${(e.message ?? "").split("\n")[0]}`.trim());
}

const ROW_NAME: Record<string, string> = { runs: "run", logged_models: "logged model", model_versions: "model version", experiments: "experiment", trace_tags: "trace" };
export const describeMissing = (m: MissingLocation) => `${ROW_NAME[m.table] ?? m.table} ${m.id}${m.live ? "" : " (deleted)"}: ${m.location} (${m.reason})`;

/**
 * Plans the artifact move (nothing is written): reads and classifies every location, resolves the local and
 * server-managed ones under the artifact folder, lists the files, checks the bucket, and refuses when a live run or
 * model points at nothing (unless `allowMissing`) or no folder is found while locations need one.
 */
export async function prepareArtifacts(from: string, opts: ArtifactOptions, log: (m: string) => void) {
  const rows = readLocations(from);
  const kinds = countKinds(rows);
  const classified = new Map([...new Set(rows.map((r) => r.location))].map((l) => [l, classify(l)]));
  const needsFolder = kinds.local + kinds.server > 0;
  const localOfExperiments = rows.filter((r) => r.table === "experiments").map((r) => r.location);
  const root =
    opts.root?.replace(/\/+$/, "") ??
    inferArtifactRoot(localOfExperiments) ??
    inferArtifactRoot(rows.filter((r) => classified.get(r.location)!.kind === "local").map((r) => r.location));
  let dir = opts.dir;
  if (dir === undefined && needsFolder) {
    // file:// locations: the recorded root, if it is here. mlflow-artifacts:/: `mlflow server`'s default
    // --artifacts-destination is ./mlartifacts, beside the sqlite:///mlflow.db it was started with.
    const serverDefault = join(dirname(resolve(from)), "mlartifacts");
    if (kinds.local && root && existsSync(root)) dir = root;
    else if (kinds.server && !kinds.local && existsSync(serverDefault)) dir = serverDefault;
    else {
      const where = kinds.local
        ? `the database's file:// locations are under ${root ?? "(no common folder)"}, which is not here`
        : `the database's mlflow-artifacts:/ locations live in the old server's --artifacts-destination folder (default ./mlartifacts beside mlflow.db), not found at ${serverDefault}`;
      throw new UserError(
        `${where} — pass --artifacts DIR (that folder, copied here${kinds.local ? "; with --artifact-root PATH if the database recorded another path than " + (root ?? "one common folder") : ""}), or --no-artifacts to copy the database only (its runs then point at nothing); nothing was written`,
      );
    }
  }
  if (dir !== undefined) {
    dir = resolve(dir);
    let st;
    try {
      st = statSync(dir);
    } catch {
      throw new UserError(`artifacts folder not found: ${dir} — pass the folder that holds the runs' artifacts, or --no-artifacts`);
    }
    if (!st.isDirectory()) throw new UserError(`--artifacts must be a folder: ${dir}`);
  }
  if (needsFolder) {
    if (!opts.bucket) throw new UserError("no bucket for the artifacts: pass --bucket or set MLFLOW_BUCKET (or --no-artifacts)");
    if (!opts.accessKeyId || !opts.secretAccessKey) throw new UserError("no S3 keys for the artifacts: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-secret-file), or pass --no-artifacts");
  }

  // Each distinct location: its path below the root, the folder here, what is in it.
  const files = new Map<string, LocalFile>();
  const rewrites = new Map<string, string>();
  const found = new Map<string, string | undefined>(); // location -> reason it points at nothing (undefined = found)
  const walked: string[] = [];
  const byRel = [...classified].map(([location, c]) => ({ location, c, rel: relativeToRoot(c, root) }));
  byRel.sort((a, b) => (a.rel ?? "").length - (b.rel ?? "").length);
  for (const { location, c, rel } of byRel) {
    if (c.kind !== "local" && c.kind !== "server") continue;
    if (rel === undefined) {
      found.set(location, `outside the artifact root ${root ?? "(none found)"}: pass --artifact-root PATH, a folder holding every location`);
      continue;
    }
    const parts = rel.split("/").filter((p) => p !== "");
    if (parts.includes("..")) {
      found.set(location, "a path with .. is not followed");
      continue;
    }
    if (c.kind === "local") rewrites.set(location, placement(rel).location);
    const here = join(dir!, ...parts);
    if (!existsSync(here)) {
      let linkBroken = false;
      try {
        linkBroken = lstatSync(here).isSymbolicLink();
      } catch {}
      if (linkBroken) walk(dir!, here, parts.join("/"), files); // names the dangling link
      found.set(location, `${here} not found`);
      continue;
    }
    found.set(location, undefined);
    const relKey = parts.join("/");
    if (walked.some((w) => w === "" || relKey === w || relKey.startsWith(w + "/"))) continue; // inside a folder already walked
    walk(dir!, here, relKey, files);
    walked.push(relKey);
  }

  const missing: MissingLocation[] = rows
    .filter((r) => found.get(r.location) !== undefined)
    .map((r) => ({ table: r.table, column: r.column, id: r.id, live: r.live, required: r.required, location: r.location, reason: found.get(r.location)! }));
  const list = [...files.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const plan: ArtifactPlan = {
    dir,
    root: kinds.local ? root : undefined,
    bucket: needsFolder ? opts.bucket : undefined,
    kinds,
    files: list.length,
    bytes: list.reduce((a, f) => a + f.size, 0),
    missing,
    remote: remoteOf(rows),
    rewritten: [...rewrites].filter(([a, b]) => a !== b).length,
    allowMissing: !!opts.allowMissing,
    skipped: false,
  };
  log(
    `artifacts: ${kinds.local} local, ${kinds.server} mlflow-artifacts:/, ${kinds.remote} remote, ${kinds.reference} reference location(s); ` +
      `${plan.files} files (${plan.bytes} bytes)${dir ? ` in ${dir}` : ""}${needsFolder ? ` -> s3://${opts.bucket}/` : ""}${plan.root ? ` (recorded as ${plan.root})` : ""}; ${missing.length} point at nothing`,
  );

  const fatal = missing.filter((m) => m.live && m.required);
  if (fatal.length && !opts.allowMissing) {
    const liveRequired = new Set(rows.filter((r) => r.live && r.required && ["local", "server"].includes(classified.get(r.location)!.kind)).map((r) => `${r.table}:${r.id}`));
    const firstRel = relativeToRoot(classified.get(fatal[0].location)!, root);
    const suggestion = dir && firstRel !== undefined ? suggestDir(dir, firstRel) : undefined;
    const hint = suggestion
      ? `${firstRel} is under ${suggestion}: pass --artifacts ${suggestion}`
      : plan.files === 0
        ? `${dir} holds none of them: pass --artifacts DIR, the folder that holds the runs' artifacts (--artifact-root PATH: the path the database recorded for it)`
        : `pass --artifacts DIR (the folder holding them) and --artifact-root PATH (the path the database recorded for it), or --allow-missing-artifacts if those runs/models really logged no files`;
    throw new UserError(
      `${new Set(fatal.map((m) => `${m.table}:${m.id}`)).size} of ${liveRequired.size} live runs/models point at nothing (e.g. ${fatal.slice(0, 3).map(describeMissing).join("; ")}) — ${hint}; nothing was written`,
    );
  }

  if (!needsFolder) {
    return { plan, rewrites, upload: async () => ({ uploaded: 0, skipped: 0, bytesUploaded: 0, verified: 0 }), verify: async () => 0, result: () => undefined as ArtifactResult | undefined, close: () => {} };
  }
  const bucket = opts.bucket!;
  // The AWS SDK loads only when there is something to upload (a dry run, --no-artifacts and --help start faster).
  const [{ HeadBucketCommand, HeadObjectCommand }, { Upload }, { s3Client }] = await Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage"), import("../s3-client.ts")]);
  const client = s3Client({ endpoint: opts.endpoint, region: opts.region, accessKeyId: opts.accessKeyId!, secretAccessKey: opts.secretAccessKey! }, 3);
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    client.destroy();
    throw s3Failure(error, `bucket ${bucket}${opts.endpoint ? ` at ${opts.endpoint}` : ""}`);
  }
  let result: ArtifactResult | undefined;
  const pool = async (work: (f: LocalFile) => Promise<void>, onError: (f: LocalFile, e: unknown) => Error, progress?: (done: number) => void) => {
    let next = 0;
    let done = 0;
    let lastLog = Date.now();
    const worker = async () => {
      while (next < list.length) {
        const f = list[next++];
        try {
          await work(f);
        } catch (error) {
          throw onError(f, error);
        }
        done++;
        if (progress && Date.now() - lastLog > 2000) {
          lastLog = Date.now();
          progress(done);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  };
  const statusOf = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return {
    plan,
    rewrites,
    result: () => result,
    close: () => client.destroy(),
    /** Uploads what is not there yet; throws a UserError that says a re-run resumes. */
    upload: async (progress: (m: string) => void): Promise<ArtifactResult> => {
      const r: ArtifactResult = { uploaded: 0, skipped: 0, bytesUploaded: 0, verified: 0 };
      await pool(
        async (f) => {
          Object.assign(f, await hashFile(f.abs));
          try {
            const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: f.key }));
            if (head.ContentLength === f.size && head.Metadata?.sha256 === f.sha256) {
              r.skipped++;
              return;
            }
          } catch (error) {
            if (statusOf(error) !== 404) throw error;
          }
          const upload = new Upload({
            client,
            params: { Bucket: bucket, Key: f.key, Body: createReadStream(f.abs), ContentLength: f.size, Metadata: { sha256: f.sha256! } },
            partSize: opts.partSize ?? 16 * 1024 * 1024,
            queueSize: 2,
            leavePartsOnError: false,
          });
          await upload.done();
          r.uploaded++;
          r.bytesUploaded += f.size;
        },
        (f, error) => s3Failure(error, `upload of ${f.key} failed (re-run to resume: finished files are skipped); nothing was written to the database`),
        (done) => progress(`artifacts: ${done}/${list.length} files`),
      );
      progress(`artifacts: ${r.uploaded} uploaded (${r.bytesUploaded} bytes), ${r.skipped} already there`);
      result = r;
      return r;
    },
    /** Every planned object is in the bucket with the planned size and checksum; throws (the caller rolls back). */
    verify: async (progress: (m: string) => void): Promise<number> => {
      const bad: string[] = [];
      await pool(
        async (f) => {
          let head;
          try {
            head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: f.key }));
          } catch (error) {
            if (statusOf(error) === 404) return void bad.push(`${f.key} is missing`);
            throw error;
          }
          if (head.ContentLength !== f.size) return void bad.push(`${f.key} has ${head.ContentLength} bytes, planned ${f.size}`);
          if (f.sha256 && head.Metadata?.sha256 !== undefined && head.Metadata.sha256 !== f.sha256) return void bad.push(`${f.key}: sha256 differs`);
          // A single-part upload's ETag is the MD5 of the content on S3 and MinIO (not with SSE-KMS; then it is not plain hex).
          const etag = head.ETag?.replace(/"/g, "");
          if (f.md5 && etag && /^[0-9a-f]{32}$/.test(etag) && etag !== f.md5) return void bad.push(`${f.key}: MD5 (ETag) differs`);
        },
        (f, error) => s3Failure(error, `checking ${f.key} in the bucket failed; rolled back, nothing was written to the database`),
      );
      if (bad.length) {
        throw new UserError(`${bad.length} artifact object(s) are not as planned in s3://${bucket} (${bad.slice(0, 3).join("; ")}) — rolled back, nothing was written to the database; re-run to upload them again`);
      }
      progress(`artifacts: ${list.length} objects verified in s3://${bucket} (size and checksum)`);
      if (result) result.verified = list.length;
      return list.length;
    },
  };
}

export type PreparedArtifacts = Awaited<ReturnType<typeof prepareArtifacts>>;
