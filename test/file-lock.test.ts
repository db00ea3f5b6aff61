import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UserError } from "../scripts/lib/cli.ts";
import { withFileLock } from "../scripts/lib/file-lock.ts";
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
