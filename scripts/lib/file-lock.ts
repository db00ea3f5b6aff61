// A lock file for short read-modify-write sections shared by concurrent runs (bootstrap's users files). Synchronous,
// because bootstrap is: an exclusive create (O_EXCL) is the lock; the holder's pid inside lets a later run break the
// lock of a run that was killed. Node has no flock(); O_EXCL creates are atomic on local file systems.
// tryFileLock (below) is the long-held kind that does not wait (backup, restore, upgrade): exclusive or shared.
import { closeSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
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
    const pid = Number(content.split("\n")[0].trim());
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

/** Creates the lock file `path` holding `content` (exclusive create: the lock); false if it exists. */
function tryAcquire(path: string, content = `${process.pid}\n`): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, content);
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

export interface HeldLock {
  path: string;
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  since: string;
  what: string;
}

function readHolder(path: string): Holder | undefined {
  try {
    const [pid, host, since, what] = readFileSync(path, "utf8").split("\n");
    return { pid: Number(pid), host: host ?? "", since: since ?? "", what: what || "a run" };
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** A holder that is gone: on this host, and its pid no longer runs. A lock from another host is never judged stale. */
function gone(h: Holder): boolean {
  return h.host === hostname() && Number.isInteger(h.pid) && h.pid > 0 && !processAlive(h.pid);
}

/** Removes the lock file `path` if it still holds `h` (another run may have taken it over meanwhile). */
function removeIfSame(path: string, h: Holder) {
  const now = readHolder(path);
  if (now && now.pid === h.pid && now.since === h.since) unlinkSync(path);
}

/**
 * Takes the lock `path` now or throws a one-line UserError naming its holder (what, pid, host, since) — never waits.
 * Exclusive: the file `path` itself (O_EXCL). Shared: a file `path.shared.<pid>` per holder; any number of shared
 * holders, or one exclusive. Each side creates its own file first and then looks for the other's, so two runs
 * starting together cannot both get in (at worst both are refused). A holder on this host whose pid is gone (killed)
 * is taken over. `label` starts the message: "the backup folder /x is in use".
 */
export function tryFileLock(path: string, what: string, label: string, { shared = false }: { shared?: boolean } = {}): HeldLock {
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), what };
  const content = `${me.pid}\n${me.host}\n${me.since}\n${me.what}\n`;
  const busy = (h: Holder, file: string) =>
    new UserError(`${label}: ${h.what} holds it (pid ${h.pid} on host ${h.host || "?"}, since ${h.since || "?"}) — wait for it to finish, or delete ${file} if that run is gone`);
  const sharedPrefix = `${basename(path)}.shared.`;
  const sharedHolders = () => {
    let names: string[] = [];
    try {
      names = readdirSync(dirname(path)).filter((n) => n.startsWith(sharedPrefix));
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
    }
    return names.map((n) => join(dirname(path), n));
  };
  if (shared) {
    const mine = `${path}.shared.${process.pid}`;
    writeFileSync(mine, content, { mode: 0o600 });
    const h = readHolder(path);
    if (h && !gone(h)) {
      unlinkSync(mine);
      throw busy(h, path);
    }
    if (h) removeIfSame(path, h);
    return { path: mine, release: () => unlinkIfThere(mine) };
  }
  for (let attempt = 0; !tryAcquire(path, content); attempt++) {
    const h = readHolder(path);
    if (h && !gone(h)) throw busy(h, path);
    if (h) removeIfSame(path, h);
    if (attempt > 3) throw busy(h ?? { pid: NaN, host: "?", since: "?", what: "another run" }, path);
  }
  for (const file of sharedHolders()) {
    const h = readHolder(file);
    if (!h) continue;
    if (gone(h)) {
      removeIfSame(file, h);
      continue;
    }
    unlinkSync(path);
    throw busy(h, file);
  }
  return { path, release: () => unlinkIfThere(path) };
}

function unlinkIfThere(path: string) {
  try {
    unlinkSync(path);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
}
