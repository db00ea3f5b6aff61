// Files under secrets/: created without ever replacing an existing one, replaced only atomically, and never
// left half-written. Every write goes to a temporary file in the same directory first.
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export const SECRETS_DIR_MODE = 0o700;
export const SECRET_FILE_MODE = 0o600;

/** The secret files, relative to the project directory. */
export const SECRET_FILES = {
  postgres: "secrets/postgres_password",
  minio: "secrets/minio_root_password",
  /** MLflow's own S3 key, limited to its bucket (compose.yml's createbuckets makes the user). */
  mlflowS3: "secrets/mlflow_s3_secret_key",
  caddyUsers: "secrets/proxy_users.caddy",
  /** Rebuilt from caddyUsers on every run (scripts/lib/caddy-user-guard.ts); never edited by hand. */
  caddyGuard: "secrets/proxy_users.caddy_guard",
  nginxUsers: "secrets/proxy_users.htpasswd",
  proxyPassword: (user: string) => `secrets/proxy_password.${user}`,
} as const;

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error && "code" in error ? String((error as { code: unknown }).code) : undefined;
}

const TEMP_NAME = /^\..+\.tmp-[0-9a-f]{12}$/;

/**
 * Removes temporary files a killed run left in `dir` (they live for milliseconds in a run that finishes),
 * when older than `minAgeMs` so a concurrent run's file is never taken away. Returns their names.
 */
export function removeStaleTemps(dir: string, minAgeMs = 60_000): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!TEMP_NAME.test(name)) continue;
    try {
      if (Date.now() - statSync(join(dir, name)).mtimeMs < minAgeMs) continue;
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
    }
  }
  return removed;
}

/** Writes `content` to a new temporary file next to `path` (flushed to disk) and returns its name. */
function writeTemp(path: string, content: string, mode: number): string {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString("hex")}`);
  const fd = openSync(temp, "wx", mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
  closeSync(fd);
  chmodSync(temp, mode); // the umask may have removed bits from `mode`; never adds any beyond it
  return temp;
}

/**
 * Creates `path` with `content` unless it already exists; returns whether it did. The file appears complete
 * or not at all (temporary file + hard link, which fails if the name exists, even in a race with another run).
 * Where hard links are not supported, falls back to an exclusive create (`wx`) and removes a partial file on error.
 */
export function createFileExclusive(path: string, content: string, mode = SECRET_FILE_MODE): boolean {
  const temp = writeTemp(path, content, mode);
  try {
    linkSync(temp, path);
    return true;
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "ENOSYS"].includes(errorCode(error) ?? "")) throw error;
  } finally {
    unlinkSync(temp);
  }
  return createWithWx(path, content, mode);
}

function createWithWx(path: string, content: string, mode: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", mode);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    chmodSync(path, mode);
  } catch (error) {
    closeSync(fd);
    unlinkSync(path);
    throw error;
  }
  return true;
}

/** Replaces (or creates) `path` atomically: readers see the old content or the new, never a mix. */
export function replaceFile(path: string, content: string, mode = SECRET_FILE_MODE): void {
  const temp = writeTemp(path, content, mode);
  try {
    renameSync(temp, path);
  } catch (error) {
    unlinkSync(temp);
    throw error;
  }
}

/** The file's text, or undefined when it does not exist. */
export function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** A password file's value: the content without a trailing line break (tolerates a hand-edited file). */
export function passwordFromFile(text: string): string {
  return text.replace(/\r?\n$/, "");
}

/** Makes sure `dir` is a directory only its owner can enter (creating it, or removing group/other bits). */
export function ensurePrivateDir(dir: string): "created" | "tightened" | "kept" {
  try {
    mkdirSync(dir, { mode: SECRETS_DIR_MODE });
    chmodSync(dir, SECRETS_DIR_MODE);
    return "created";
  } catch (error) {
    if (errorCode(error) !== "EEXIST") throw error;
  }
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  return tightenMode(dir, SECRETS_DIR_MODE) ? "tightened" : "kept";
}

/** Removes group/other permission bits from `path`; returns whether it changed anything. */
export function tightenMode(path: string, mode = SECRET_FILE_MODE): boolean {
  const current = statSync(path).mode & 0o777;
  if ((current & 0o077) === 0) return false;
  chmodSync(path, current & mode);
  return true;
}

/** The line format of a proxy users file: Caddy's `<user> <hash>` or htpasswd's `<user>:<hash>`. */
export type UsersFormat = "caddy" | "htpasswd";

function userOfLine(line: string, format: UsersFormat): string | undefined {
  const match = format === "caddy" ? /^\s*(\S+)\s+\S/.exec(line) : /^([^:#\s][^:]*):/.exec(line);
  return match?.[1];
}

export function formatUserLine(user: string, hash: string, format: UsersFormat): string {
  return format === "caddy" ? `${user} ${hash}` : `${user}:${hash}`;
}

/** The hash recorded for `user` in a users file's text, or undefined. */
export function findUserHash(text: string, user: string, format: UsersFormat): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    if (userOfLine(line, format) !== user) continue;
    return format === "caddy" ? line.trim().split(/\s+/)[1] : line.slice(line.indexOf(":") + 1).trim();
  }
  return undefined;
}

/**
 * Returns the users file's text with `user`'s line set to `line`: replaced in place when present (other lines,
 * including ones we do not understand, are kept byte for byte), appended otherwise.
 */
export function setUserLine(text: string, user: string, line: string, format: UsersFormat): string {
  const lines = text === "" ? [] : text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  let found = false;
  const out = lines.flatMap((current) => {
    if (userOfLine(current.replace(/\r$/, ""), format) !== user) return [current];
    if (found) return []; // a duplicate line for the same user
    found = true;
    return [line];
  });
  if (!found) out.push(line);
  return `${out.join("\n")}\n`;
}
