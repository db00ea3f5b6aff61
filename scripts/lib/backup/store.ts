// Where backups live: a local folder or s3://bucket/prefix. Either holds one sub-folder (or key prefix) per backup,
// named by its UTC start time, with the same files inside:
//   INCOMPLETE            written first, removed last: a backup that holds it is unfinished (failed, killed, disk full)
//   database.dump         pg_dump custom format
//   objects/<sha256(key)> one file per bucket object (named by a hash of its key: any key fits, no key clashes)
//   manifest.json         what is in the backup, with a sha256 of every part; manifest.json.sha256 guards it
import { CopyObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, linkSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { PassThrough, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { UserError } from "../cli.ts";
import { tryFileLock, type HeldLock } from "../file-lock.ts";

export const INCOMPLETE = "INCOMPLETE";
export const MANIFEST = "manifest.json";
export const MANIFEST_SUM = "manifest.json.sha256";
export const DUMP = "database.dump";
/** The lock file of a local backup folder (see BackupStore.lock). */
export const LOCK = ".lock";
export const objectFile = (key: string) => `objects/${createHash("sha256").update(key).digest("hex")}`;

/** 2026-12-01T03-00-00Z, optionally with -N when two backups start in the same second. */
export const BACKUP_NAME = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ(-\d+)?$/;

export function backupName(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

export interface Written {
  bytes: number;
  sha256: string;
}

/** Counts and hashes what flows through. */
export function hashing(): Transform & { result(): Written } {
  const hash = createHash("sha256");
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { result(): Written };
  let digest: string | undefined;
  t.result = () => ({ bytes, sha256: (digest ??= hash.digest("hex")) });
  return t;
}

export interface BackupStore {
  /** Human form: a folder path or s3://bucket/prefix */
  readonly where: string;
  /** Names of the backups held (sorted, oldest first). */
  list(): Promise<string[]>;
  has(backup: string, file: string): Promise<boolean>;
  size(backup: string, file: string): Promise<number | undefined>;
  readText(backup: string, file: string): Promise<string>;
  writeText(backup: string, file: string, text: string): Promise<void>;
  remove(backup: string, file: string): Promise<void>;
  /** Writes a stream, hashing it on the way. */
  write(backup: string, file: string, body: Readable): Promise<Written>;
  read(backup: string, file: string): Promise<Readable>;
  /** Makes `file` of `to` hold the same bytes as `file` of `from` without sending them again (hard link / server-side copy). */
  reuse(from: string, to: string, file: string): Promise<void>;
  /** Deletes a whole backup. */
  removeBackup(backup: string): Promise<void>;
  /** Makes sure the destination can be written (one line if not). */
  probe(): Promise<void>;
  /**
   * Takes the destination's lock (a local folder: its `.lock` file; an S3 destination has none): exclusive for a backup
   * (it may prune), shared for a restore (so a concurrent --keep cannot delete the backup being restored).
   */
  lock?(mode: "exclusive" | "shared", what: string): HeldLock;
}

export function localStore(root: string): BackupStore {
  const base = resolve(root);
  const path = (backup: string, file: string) => join(base, backup, file);
  const fail = (what: string, error: unknown): never => {
    const code = (error as NodeJS.ErrnoException).code;
    const hint = code === "ENOSPC" ? " — the disk is full: free space or choose another --to" : code === "EACCES" || code === "EROFS" ? " — choose a folder you can write to (--to)" : "";
    throw new UserError(`${what}: ${code ?? (error as Error).message}${hint}`);
  };
  return {
    where: base,
    async list() {
      if (!existsSync(base)) return [];
      return readdirSync(base).filter((n) => BACKUP_NAME.test(n)).sort();
    },
    async has(backup, file) {
      return existsSync(path(backup, file));
    },
    async size(backup, file) {
      try {
        return statSync(path(backup, file)).size;
      } catch {
        return undefined;
      }
    },
    async readText(backup, file) {
      return readFileSync(path(backup, file), "utf8");
    },
    async writeText(backup, file, text) {
      const p = path(backup, file);
      try {
        mkdirSync(dirname(p), { recursive: true });
        // Written to a temp name and renamed: a crash never leaves half a manifest.
        writeFileSync(`${p}.tmp`, text);
        renameSync(`${p}.tmp`, p);
      } catch (error) {
        fail(`cannot write ${p}`, error);
      }
    },
    async remove(backup, file) {
      rmSync(path(backup, file), { force: true });
    },
    async write(backup, file, body) {
      const p = path(backup, file);
      const h = hashing();
      try {
        mkdirSync(dirname(p), { recursive: true });
        await pipeline(body, h, createWriteStream(p, { mode: 0o600 }));
      } catch (error) {
        if (error instanceof UserError) throw error;
        if ((error as NodeJS.ErrnoException).syscall) fail(`cannot write ${p}`, error);
        throw error;
      }
      return h.result();
    },
    async read(backup, file) {
      const p = path(backup, file);
      if (!existsSync(p)) throw new UserError(`${p} is missing — the backup is incomplete or damaged`);
      return createReadStream(p);
    },
    async reuse(from, to, file) {
      const target = path(to, file);
      mkdirSync(dirname(target), { recursive: true });
      try {
        linkSync(path(from, file), target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") throw error;
        copyFileSync(path(from, file), target); // a file system without hard links
      }
    },
    async removeBackup(backup) {
      rmSync(join(base, backup), { recursive: true, force: true });
    },
    async probe() {
      try {
        mkdirSync(base, { recursive: true });
        const p = join(base, `.probe-${process.pid}`);
        writeFileSync(p, "");
        rmSync(p);
      } catch (error) {
        fail(`cannot write to the backup folder ${base}`, error);
      }
    },
    lock(mode, what) {
      try {
        return tryFileLock(join(base, LOCK), what, `the backup folder ${base} is in use`, { shared: mode === "shared" });
      } catch (error) {
        // A restore from a folder that is missing (the restore says so next) or read-only (nothing can prune there).
        const code = (error as NodeJS.ErrnoException).code;
        if (mode === "shared" && (code === "ENOENT" || code === "EACCES" || code === "EROFS")) return { path: "", release: () => {} };
        if (error instanceof UserError) throw error;
        return fail(`cannot lock the backup folder ${base}`, error);
      }
    },
  };
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new UserError(`expected s3://bucket/prefix, got ${JSON.stringify(url)}`);
  return { bucket: m[1], prefix: m[2].replace(/\/+$/, "") };
}

export function s3Store(client: S3Client, url: string): BackupStore {
  const { bucket, prefix } = parseS3Url(url);
  const key = (backup: string, file: string) => [prefix, backup, file].filter(Boolean).join("/");
  const where = `s3://${bucket}${prefix ? "/" + prefix : ""}`;
  const unreachable = (error: unknown): never => {
    const e = error as { name?: string; code?: string; message?: string };
    throw new UserError(`cannot use the backup destination ${where}: ${e.name ?? e.code ?? ""} ${e.message ?? ""}`.trim() + " — check --to-endpoint, the bucket and the credentials");
  };
  const listAll = async (p: string, delimiter?: string) => {
    const keys: string[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    do {
      const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: p, Delimiter: delimiter, ContinuationToken: token })).catch(unreachable);
      for (const c of r.Contents ?? []) keys.push(c.Key!);
      for (const c of r.CommonPrefixes ?? []) prefixes.push(c.Prefix!);
      token = r.NextContinuationToken;
    } while (token);
    return { keys, prefixes };
  };
  const head = async (backup: string, file: string) => {
    try {
      return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(backup, file) }));
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      return unreachable(error);
    }
  };
  return {
    where,
    async list() {
      const { prefixes } = await listAll(prefix ? prefix + "/" : "", "/");
      return prefixes.map((p) => p.slice(prefix ? prefix.length + 1 : 0).replace(/\/$/, "")).filter((n) => BACKUP_NAME.test(n)).sort();
    },
    async has(backup, file) {
      return (await head(backup, file)) !== undefined;
    },
    async size(backup, file) {
      return (await head(backup, file))?.ContentLength;
    },
    async readText(backup, file) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(backup, file) })).catch(unreachable);
      return await r.Body!.transformToString("utf8");
    },
    async writeText(backup, file, text) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(backup, file), Body: text })).catch(unreachable);
    },
    async remove(backup, file) {
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: key(backup, file) }] } })).catch(unreachable);
    },
    async write(backup, file, body) {
      const h = hashing();
      const pass = new PassThrough();
      const flowing = pipeline(body, h, pass);
      const upload = new Upload({ client, params: { Bucket: bucket, Key: key(backup, file), Body: pass }, queueSize: 2, partSize: 16 << 20 });
      await Promise.all([flowing, upload.done()]).catch(unreachable);
      return h.result();
    },
    async read(backup, file) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(backup, file) })).catch((error) => {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
          throw new UserError(`${where}/${backup}/${file} is missing — the backup is incomplete or damaged`);
        }
        return unreachable(error);
      });
      return r.Body as Readable;
    },
    async reuse(from, to, file) {
      // Server-side copy (up to 5 GiB per object, the S3 limit for one CopyObject).
      await client.send(new CopyObjectCommand({ Bucket: bucket, Key: key(to, file), CopySource: encodeURI(`${bucket}/${key(from, file)}`) }));
    },
    async removeBackup(backup) {
      const { keys } = await listAll(key(backup, ""));
      for (let i = 0; i < keys.length; i += 1000) {
        await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } })).catch(unreachable);
      }
    },
    async probe() {
      await listAll(prefix ? prefix + "/" : "", "/");
    },
  };
}
