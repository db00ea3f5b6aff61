import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UserError } from "../scripts/lib/cli.ts";
import { tryFileLock, withFileLock } from "../scripts/lib/file-lock.ts";
import { makeTempDir } from "./support/tmp.ts";

let dir: string;
let cleanup: () => void;
let lock: string;
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir("file-lock"));
  lock = join(dir, ".lock");
});
afterEach(() => cleanup());

const deadPid = () => Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);

describe("withFileLock", () => {
  it("holds the lock file (with our pid) while fn runs, and removes it afterwards, also when fn throws", () => {
    expect(withFileLock(lock, () => readFileSync(lock, "utf8"))).toBe(`${process.pid}\n`);
    expect(existsSync(lock)).toBe(false);
    expect(() => withFileLock(lock, () => { throw new Error("boom"); })).toThrow("boom");
    expect(existsSync(lock)).toBe(false);
  });

  it("waits for a live holder and gives up with a one-line UserError naming it", () => {
    writeFileSync(lock, `${process.pid}\n`); // a live process: this one
    const started = Date.now();
    let ran = false;
    const error = (() => {
      try {
        withFileLock(lock, () => (ran = true), { timeoutMs: 300 });
      } catch (caught) {
        return caught;
      }
    })();
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toContain(`pid ${process.pid}`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(readFileSync(lock, "utf8")).toBe(`${process.pid}\n`); // not taken away
  });

  it("takes over the lock of a process that is gone", () => {
    writeFileSync(lock, `${deadPid()}\n`);
    expect(withFileLock(lock, () => "ran", { timeoutMs: 1000 })).toBe("ran");
    expect(existsSync(lock)).toBe(false);
  });

  it("respects a lock without a pid while it is young (a run between create and write), breaks it when old", () => {
    writeFileSync(lock, "");
    expect(() => withFileLock(lock, () => "ran", { timeoutMs: 200, staleMs: 60_000 })).toThrow(UserError);
    const old = new Date(Date.now() - 120_000);
    utimesSync(lock, old, old);
    expect(withFileLock(lock, () => "ran", { timeoutMs: 1000, staleMs: 60_000 })).toBe("ran");
  });
});

describe("tryFileLock", () => {
  const held = (pid: number, what = "a backup", host = hostname()) => `${pid}\n${host}\n2026-12-01T03:00:00.000Z\n${what}\n`;
  const attempt = (fn: () => unknown) => {
    try {
      fn();
    } catch (caught) {
      return caught as Error;
    }
    throw new Error("expected a refusal");
  };

  it("exclusive: writes pid, host, start and what; refuses a second taker at once, naming the holder; release removes it", () => {
    const a = tryFileLock(lock, "a backup", "the folder is in use");
    const [pid, host, since, what] = readFileSync(lock, "utf8").split("\n");
    expect([Number(pid), host, what]).toEqual([process.pid, hostname(), "a backup"]);
    expect(Number.isNaN(Date.parse(since))).toBe(false);
    const started = Date.now();
    const e = attempt(() => tryFileLock(lock, "a restore", "the folder is in use"));
    expect(Date.now() - started).toBeLessThan(1000); // no waiting
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe(`the folder is in use: a backup holds it (pid ${process.pid} on host ${hostname()}, since ${since}) — wait for it to finish, or delete ${lock} if that run is gone`);
    a.release();
    expect(existsSync(lock)).toBe(false);
    tryFileLock(lock, "a backup", "x").release();
  });

  it("shared: any number of shared holders, but not with an exclusive one, either way round", () => {
    const r1 = tryFileLock(lock, "a restore", "in use", { shared: true });
    const r2 = tryFileLock(lock, "a restore", "in use", { shared: true });
    expect(readdirSync(dir).filter((n) => n.startsWith(".lock.shared."))).toHaveLength(1); // one file per process
    expect(attempt(() => tryFileLock(lock, "a backup", "in use")).message).toMatch(/^in use: a restore holds it \(pid \d+/);
    expect(existsSync(lock)).toBe(false); // the refused exclusive taker left nothing behind
    r1.release();
    r2.release();
    const x = tryFileLock(lock, "a backup", "in use");
    expect(attempt(() => tryFileLock(lock, "a restore", "in use", { shared: true })).message).toMatch(/^in use: a backup holds it/);
    expect(readdirSync(dir)).toEqual([".lock"]);
    x.release();
  });

  it("takes over the lock of a holder on this host whose pid is gone, exclusive or shared; never one of another host", () => {
    writeFileSync(lock, held(deadPid()));
    const a = tryFileLock(lock, "a backup", "in use");
    expect(readFileSync(lock, "utf8").split("\n")[0]).toBe(String(process.pid));
    a.release();
    writeFileSync(join(dir, ".lock.shared.1"), held(deadPid(), "a restore"));
    tryFileLock(lock, "a backup", "in use").release();
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(lock, held(deadPid(), "a backup", "other-host"));
    expect(attempt(() => tryFileLock(lock, "a backup", "in use")).message).toMatch(/a backup holds it \(pid \d+ on host other-host/);
  });
});
