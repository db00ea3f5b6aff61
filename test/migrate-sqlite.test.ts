// scripts/lib/migrate/sqlite.ts: better-sqlite3 objects are never garbage-collected, so a better-sqlite3 built against
// Node 24.19+'s headers cannot abort the process when V8 collects one (see that file). Without it, on such a build the
// churn script dies on SIGABRT ("Assertion failed: (env) != nullptr" in node::RemoveEnvironmentCleanupHook).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import Database, { keptObjects } from "../scripts/lib/migrate/sqlite.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;

describe("better-sqlite3 through scripts/lib/migrate/sqlite.ts", () => {
  it("keeps every database, statement, pragma statement, iterator and backup it makes", async () => {
    const tmp = makeTempDir("sqlite-keep");
    try {
      const before = keptObjects();
      const db = new Database(join(tmp.dir, "a.db"));
      expect(keptObjects() - before).toBe(1);
      db.exec("create table t (a integer)");
      db.prepare("insert into t values (1)").run();
      expect(db.pragma("journal_mode", { simple: true })).toBe("delete");
      for (const row of db.prepare("select a from t").iterate()) expect(row).toEqual({ a: 1 });
      await db.backup(join(tmp.dir, "b.db"));
      db.close();
      // a database, 3 statements (one from pragma), an iterator, a backup
      expect(keptObjects() - before).toBe(6);
    } finally {
      tmp.cleanup();
    }
  });

  it("survives collection pressure on the main thread and on a worker thread (exit 0, no abort)", () => {
    const tmp = makeTempDir("sqlite-churn");
    try {
      // V8 flags that make collections frequent and synchronous, so an unguarded run aborts every time (see the script).
      const gcFlags = ["--single-threaded-gc", "--max-semi-space-size=1"];
      const r = spawnSync(process.execPath, [...gcFlags, "--import", "tsx", "test/support/sqlite-churn.ts", join(ROOT, "scripts/lib/migrate/sqlite.ts"), tmp.dir], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 120_000,
      });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 2000) }).toEqual({ status: 0, signal: null, stderr: "" });
      expect(r.stdout.trim().split("\n").sort()).toEqual(["ok main", "ok worker"]);
    } finally {
      tmp.cleanup();
    }
  });
});
