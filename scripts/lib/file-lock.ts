// A lock file for short read-modify-write sections shared by concurrent runs (bootstrap's users files). Synchronous,
// because bootstrap is: an exclusive create (O_EXCL) is the lock; the holder's pid inside lets a later run break the
// lock of a run that was killed. Node has no flock(); O_EXCL creates are atomic on local file systems.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { UserError } from "./cli.ts";

export interface LockOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** A lock file without a pid this old is broken (default 5 s: a run holds it for well under a second). */
  staleMs?: number;
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error && "code" in error ? String((error as { code: unknown }).code) : undefined;
}

const sleepBuffer = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepBuffer, 0, 0, ms);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM"; // exists, owned by someone else
  }
}

/**
 * The content of the lock at `path` when a run that is gone left it: its pid no longer runs, or (a run killed between
 * creating the file and writing its pid) it has no pid and is older than `staleMs`. Undefined while it is held.
 */
function staleContent(path: string, staleMs: number): string | undefined {
  try {
    const content = readFileSync(path, "utf8");
    const pid = Number(content.trim());
    if (content.trim() !== "" && Number.isInteger(pid) && pid > 0) return processAlive(pid) ? undefined : content;
    return Date.now() - statSync(path).mtimeMs >= staleMs ? content : undefined;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined; // released meanwhile: just try again
    throw error;
  }
}

function holder(path: string): string {
  try {
    return readFileSync(path, "utf8").trim() || "?";
  } catch {
    return "?";
  }
}

function tryAcquire(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Runs `fn` while holding the lock file `path`; removes it afterwards, also when `fn` throws. */
export function withFileLock<T>(path: string, fn: () => T, { timeoutMs = 30_000, staleMs = 5_000 }: LockOptions = {}): T {
  const deadline = Date.now() + timeoutMs;
  let wait = 5;
  while (!tryAcquire(path)) {
    const stale = staleContent(path, staleMs);
    if (stale !== undefined) {
      // Two runs may find the same stale lock: the second must not remove the one the first has just created, so
      // remove it only if it still holds what made it stale (a window of microseconds remains; Node has no flock()).
      try {
        if (readFileSync(path, "utf8") === stale) unlinkSync(path);
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error;
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new UserError(`${path} is held by another run (pid ${holder(path)}) — wait for it, or remove the file if no such run is going on`);
    }
    sleepSync(wait + Math.random() * wait);
    wait = Math.min(wait * 2, 100);
  }
  try {
    return fn();
  } finally {
    unlinkSync(path);
  }
}
