// What backup and restore talk to: the local stack of the current directory (through migrate's forwarder, the
// database tools inside the db container) or explicit endpoints (--db URL + local tools, --s3-endpoint, --bucket).
// And where backups live: a local folder or s3://bucket/prefix (--to / --from).
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { UsageError, UserError } from "../cli.ts";
import { parseEnv } from "../envfile.ts";
import { s3Client } from "../s3-client.ts";
import { passwordFromFile, readIfExists } from "../secrets.ts";
import type { Docker } from "../migrate/docker.ts";
import { openLocalStack, stackSettings } from "../migrate/local-stack.ts";
import { connectTarget } from "../migrate/target.ts";
import { tryFileLock, type HeldLock } from "../file-lock.ts";
import { containerTools, localTools, type PgTools } from "./database.ts";
import { localStore, parseS3Url, s3Store, type BackupStore } from "./store.ts";
import type { S3Client } from "@aws-sdk/client-s3";
import type pg from "pg";

export interface EndpointFlags {
  db?: string;
  "password-file"?: string;
  "s3-endpoint"?: string;
  bucket?: string;
  "s3-secret-file"?: string;
  "mlflow-version"?: string;
}

export interface Endpoints {
  /** "the local stack" or the redacted --db */
  describe: string;
  local: boolean;
  connect: () => Promise<pg.Client>;
  tools: PgTools;
  s3: S3Client;
  bucket: string;
  mlflowVersion: string | null;
  close(): Promise<void>;
}

export function readSecretFile(path: string, what: string): string {
  try {
    return passwordFromFile(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UserError(`cannot read ${what} file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

export function envFile(dir: string): Record<string, string> {
  const text = readIfExists(join(dir, ".env"));
  return text === undefined ? {} : parseEnv(text);
}

const region = () => process.env.AWS_DEFAULT_REGION ?? process.env.AWS_REGION ?? "us-east-1";

export async function openEndpoints(flags: EndpointFlags, dir: string, d: Docker, phase: (m: string) => void): Promise<Endpoints> {
  const env = envFile(dir);
  const mlflowVersion = flags["mlflow-version"] ?? env.MLFLOW_VERSION ?? null;
  if (flags.db) {
    const password = flags["password-file"] ? readSecretFile(flags["password-file"], "password") : undefined;
    const endpoint = flags["s3-endpoint"] ?? process.env.MLFLOW_S3_ENDPOINT_URL;
    const bucket = flags.bucket ?? process.env.MLFLOW_BUCKET ?? env.MLFLOW_BUCKET;
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = flags["s3-secret-file"] ? readSecretFile(flags["s3-secret-file"], "S3 secret") : process.env.AWS_SECRET_ACCESS_KEY;
    if (!bucket) throw new UsageError("with --db, name the bucket: --bucket NAME (or MLFLOW_BUCKET)");
    if (!accessKeyId || !secretAccessKey) throw new UsageError("with --db, the S3 keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-secret-file)");
    const s3 = s3Client({ endpoint, region: region(), accessKeyId, secretAccessKey });
    const url = flags.db;
    return {
      describe: url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@"),
      local: false,
      connect: () => connectTarget(url, password ?? process.env.PGPASSWORD),
      tools: localTools(url, password ?? process.env.PGPASSWORD),
      s3,
      bucket,
      mlflowVersion,
      close: async () => s3.destroy(),
    };
  }
  const settings = stackSettings(dir);
  const stack = await openLocalStack(dir, d, phase);
  const s3 = s3Client({ endpoint: stack.s3.endpoint, region: region(), accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey });
  return {
    describe: "the local stack",
    local: true,
    connect: () => connectTarget(stack.to, stack.password),
    tools: containerTools(dir, settings.user, settings.db),
    s3,
    bucket: stack.s3.bucket,
    mlflowVersion,
    close: async () => {
      s3.destroy();
      await stack.close();
    },
  };
}

/** Credentials for an s3:// backup destination: BACKUP_AWS_* first (an off-site account), else AWS_*. */
function destinationClient(endpoint: string | undefined): S3Client {
  const accessKeyId = process.env.BACKUP_AWS_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.BACKUP_AWS_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) throw new UsageError("an s3:// backup destination needs BACKUP_AWS_ACCESS_KEY_ID and BACKUP_AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
  return s3Client({ endpoint: endpoint ?? process.env.BACKUP_S3_ENDPOINT_URL, region: region(), accessKeyId, secretAccessKey });
}

/** The destination of `--to` (default backups/ in `dir`). */
export function destination(to: string | undefined, endpoint: string | undefined, dir: string): { store: BackupStore; close(): void } {
  if (to?.startsWith("s3://")) {
    const client = destinationClient(endpoint);
    return { store: s3Store(client, to), close: () => client.destroy() };
  }
  return { store: localStore(to ?? join(dir, "backups")), close: () => {} };
}

/** The backup named by `--from`: its destination and its name (the last path part). */
export function source(from: string, endpoint: string | undefined): { store: BackupStore; name: string; close(): void } {
  if (from.startsWith("s3://")) {
    const { bucket, prefix } = parseS3Url(from);
    const name = prefix.split("/").at(-1)!;
    if (!name) throw new UsageError(`--from ${from}: name the backup, e.g. s3://${bucket}/mlflow/2026-12-01T03-00-00Z`);
    const client = destinationClient(endpoint);
    return { store: s3Store(client, `s3://${bucket}/${prefix.split("/").slice(0, -1).join("/")}`), name, close: () => client.destroy() };
  }
  const clean = from.replace(/\/+$/, "");
  return { store: localStore(dirname(clean)), name: basename(clean), close: () => {} };
}

/** The lock file of a stack directory: one backup, restore or upgrade of the local stack at a time (git-ignored). */
export const STACK_LOCK = ".backup.lock";

export function lockStack(dir: string, what: string): HeldLock {
  return tryFileLock(join(dir, STACK_LOCK), what, `the stack in ${dir} is busy`);
}

/**
 * The endpoint of an s3:// backup location (`--to` / `--from`). Without --db, --s3-endpoint has no source to name (the
 * stack's MinIO is reached through the forwarder), so with an s3:// location it names that location's endpoint: the
 * issue's `npm run backup -- --to s3://offsite-bucket/mlflow --s3-endpoint https://…`. --to-endpoint/--from-endpoint
 * say the same in any mode.
 */
export function locationEndpoint(flags: { db?: string; "s3-endpoint"?: string }, location: string | undefined, own: string | undefined, ownFlag: string): string | undefined {
  if (flags.db || flags["s3-endpoint"] === undefined) return own;
  const which = ownFlag === "--to-endpoint" ? "--to s3://…" : "--from s3://…";
  if (!location?.startsWith("s3://")) throw new UsageError(`--s3-endpoint without --db names the endpoint of an s3:// ${ownFlag === "--to-endpoint" ? "destination" : "backup"} (${which}); the stack's own MinIO needs none`);
  if (own !== undefined) throw new UsageError(`--s3-endpoint and ${ownFlag} both name the s3:// ${ownFlag === "--to-endpoint" ? "destination" : "backup"}'s endpoint here (no --db): pass one of them`);
  return flags["s3-endpoint"];
}
