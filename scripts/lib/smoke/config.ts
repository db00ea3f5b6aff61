// Where the smoke points and as whom: flags, then MLFLOW_TRACKING_* variables, then the local stack's .env and secrets/.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError, UserError } from "../cli.ts";
import { parseEnv } from "../envfile.ts";
import { passwordFromFile } from "../secrets.ts";
import { stackUrl } from "../stack.ts";
import { parseSize } from "./advice.ts";
import type { SmokeSettings } from "./checks.ts";

export interface SmokeFlags {
  url?: string;
  user?: string;
  "password-file"?: string;
  large?: string;
  keep?: boolean;
  json?: boolean;
  timeout?: string;
  "s3-endpoint"?: string;
  "s3-bucket"?: string;
  "s3-prefix"?: string;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/** Resolves the settings; `root` is the stack's folder (where .env and secrets/ live). Throws UserError/UsageError. */
export function resolveSettings(flags: SmokeFlags, env: NodeJS.ProcessEnv, root: string): SmokeSettings & { sources: Record<string, string> } {
  const envFile = join(root, ".env");
  const dotenv = existsSync(envFile) ? parseEnv(readFileSync(envFile, "utf8")) : undefined;
  const sources: Record<string, string> = {};

  let url: string;
  if (flags.url) (url = flags.url), (sources.url = "--url");
  else if (env.MLFLOW_TRACKING_URI) (url = env.MLFLOW_TRACKING_URI), (sources.url = "MLFLOW_TRACKING_URI");
  else if (dotenv) (url = stackUrl(dotenv)), (sources.url = ".env");
  else throw new UserError(`no .env in ${root} and no --url: run npm run bootstrap for the local stack, or pass --url (or MLFLOW_TRACKING_URI)`);
  url = checkUrl(url, sources.url);

  const user = flags.user ?? env.MLFLOW_TRACKING_USERNAME ?? "mlflow";
  if (!/^[^\s:/]+$/.test(user)) throw new UsageError(`--user ${JSON.stringify(user)}: a user name has no spaces, ':' or '/'`);
  sources.user = flags.user ? "--user" : env.MLFLOW_TRACKING_USERNAME ? "MLFLOW_TRACKING_USERNAME" : "default";

  let password: string;
  if (flags["password-file"]) {
    password = readSecret(flags["password-file"], `--password-file ${flags["password-file"]}`);
    sources.password = "--password-file";
  } else if (env.MLFLOW_TRACKING_PASSWORD) {
    password = env.MLFLOW_TRACKING_PASSWORD;
    sources.password = "MLFLOW_TRACKING_PASSWORD";
  } else {
    const file = join(root, "secrets", `proxy_password.${user}`);
    if (!existsSync(file))
      throw new UserError(`no password for user '${user}': ${file} does not exist; run npm run bootstrap, or pass --password-file FILE (or MLFLOW_TRACKING_PASSWORD)`);
    password = readSecret(file, file);
    sources.password = `secrets/proxy_password.${user}`;
  }

  const timeoutMs = flags.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(flags.timeout);
  let largeBytes: number | undefined;
  if (flags.large !== undefined) {
    largeBytes = parseSize(flags.large);
    if (largeBytes === undefined) throw new UsageError(`--large ${JSON.stringify(flags.large)}: expected a size such as 500MB, 2GiB or 1048576`);
  }

  return {
    url,
    username: user,
    password,
    expectedVersion: dotenv?.MLFLOW_VERSION || undefined,
    timeoutMs,
    largeBytes,
    keep: flags.keep ?? false,
    s3: s3Target(flags, env, dotenv, root),
    sources,
  };
}

function checkUrl(url: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${source}: ${JSON.stringify(url)} is not a URL (expected e.g. https://mlflow.example.com)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UsageError(`${source}: ${url} must start with http:// or https://`);
  if (parsed.username || parsed.password) throw new UsageError(`${source}: put the user in --user and the password in a file (--password-file), not in the URL`);
  return parsed.href.replace(/\/$/, "");
}

function readSecret(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UserError(`cannot read ${what}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const secret = passwordFromFile(text);
  if (!secret) throw new UserError(`${what} is empty`);
  return secret;
}

/** `30`, `30s`, `1500ms`, `2m` → milliseconds (a bare number is seconds). */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(text);
  const ms = match ? Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[(match[2] ?? "s").toLowerCase()] : NaN;
  if (!(ms >= 1)) throw new UsageError(`--timeout ${JSON.stringify(text)}: expected seconds, e.g. 30, 30s, 500ms or 2m`);
  return Math.round(ms);
}

function s3Target(flags: SmokeFlags, env: NodeJS.ProcessEnv, dotenv: Record<string, string> | undefined, root: string): SmokeSettings["s3"] {
  const endpoint = flags["s3-endpoint"];
  if (!endpoint)
    return { skip: "no --s3-endpoint: the stack does not publish MinIO to the host; pass --s3-endpoint URL (a tunnel or a published port 9000) to check the bucket" };
  checkUrl(endpoint, "--s3-endpoint");
  const accessKeyId = env.AWS_ACCESS_KEY_ID ?? dotenv?.MINIO_ROOT_USER;
  const secretFile = join(root, "secrets", "minio_root_password");
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY ?? (existsSync(secretFile) ? readSecret(secretFile, secretFile) : undefined);
  if (!accessKeyId || !secretAccessKey)
    throw new UserError(
      "--s3-endpoint needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run from the stack's folder (MINIO_ROOT_USER in .env, secrets/minio_root_password)",
    );
  return {
    endpoint,
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
    bucket: flags["s3-bucket"] ?? dotenv?.MLFLOW_BUCKET ?? "mlflow",
    prefix: flags["s3-prefix"] ?? "",
    accessKeyId,
    secretAccessKey,
  };
}
