// Run as a script by test/migrate-sqlite.test.ts: makes and drops every kind of better-sqlite3 object (databases,
// statements, pragma statements, iterators, backups) while allocating enough for V8 to collect them, on this thread and
// on a worker thread that ends by itself, at the same time. Prints "ok <thread>" per thread and exits 0 when nothing
// aborted. Run it with `--single-threaded-gc --max-semi-space-size=1` (frequent, synchronous collections): unguarded
// (better-sqlite3 itself as the module) on Node 24.21 it then aborted in 10 of 10 runs on each thread alone; without
// those flags in about two runs of three.
// argv: <module exporting Database as default> <temp dir> [threads: main,worker]
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { isMainThread, Worker, workerData } from "node:worker_threads";

const ROUNDS = 10_000;
const { module, dir } = (isMainThread ? { module: process.argv[2], dir: process.argv[3] } : workerData) as { module: string; dir: string };
const threads = (process.argv[4] ?? "main,worker").split(",");
const { default: Database } = (await import(pathToFileURL(module).href)) as { default: typeof import("better-sqlite3") };

async function churn(thread: string) {
  const db = new Database(join(dir, `${thread}.db`));
  db.pragma("journal_mode = wal");
  db.exec("create table t (a integer primary key, b text); insert into t (b) values ('x'), ('y'), ('z')");
  let garbage: string[] = [];
  const kinds: [string, number, () => unknown][] = [
    ["statements", ROUNDS, () => db.prepare("select count(*) from t").get()],
    ["pragma statements", ROUNDS, () => db.pragma("journal_mode", { simple: true })],
    ["iterators", ROUNDS, () => [...db.prepare("select a, b from t").iterate()]],
    ["databases", ROUNDS / 10, () => new Database(":memory:").close()],
  ];
  for (const [, rounds, make] of kinds) {
    for (let i = 0; i < rounds; i++) {
      make();
      garbage.push(`${thread} ${i}`);
      if (garbage.length > 10_000) garbage = [];
    }
  }
  for (let i = 0; i < 4; i++) await db.backup(join(dir, `${thread}-${i}.db`));
  db.close();
  process.stdout.write(`ok ${thread}\n`);
}

if (isMainThread) {
  let worker: Promise<number> | undefined;
  if (threads.includes("worker")) {
    // The worker registers tsx itself, as lanes.ts starts lane-worker.ts.
    const require = createRequire(import.meta.url);
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "esm", "api", "index.mjs");
    const boot = `import(${JSON.stringify(pathToFileURL(tsx).href)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const w = new Worker(boot, { eval: true, workerData: { module, dir } });
    worker = new Promise<number>((resolve, reject) => w.on("error", reject).on("exit", resolve));
  }
  if (threads.includes("main")) await churn("main");
  const code = await worker;
  if (code) throw new Error(`worker exited with ${code}`);
} else {
  await churn("worker");
}
