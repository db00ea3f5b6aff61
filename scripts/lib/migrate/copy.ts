// Copies one table: streams the SQLite rows through COPY ... FROM STDIN (binary format when every column's type allows,
// see binary.ts; else text) and, from the same source values, computes the order-independent checksum that verify.ts
// compares with PostgreSQL's own, in the same thread. (A worker thread computing the checksum in parallel was measured
// and removed: on 2 cores it competes with the server for the CPU and made the copy no faster.)
import type Database from "./sqlite.ts";
import { once } from "node:events";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { UserError } from "../cli.ts";
import type { Kind, SqliteValue } from "./convert.ts";
import { RowEncoder, type Checksum, type RowHash } from "./row-encoder.ts";
import { BinaryRows, binaryWriter, type BinaryWriter } from "./binary.ts";
import { quoteSqlite, sqliteFailure } from "./source.ts";
import type { TargetColumn, TargetTable } from "./target.ts";

export interface CopyProgress {
  table: string;
  done: number;
  total: number;
}

const CHUNK = 256 * 1024;

/** Columns of `table` that both sides have, in the target's order (generated ones excluded). */
export function sharedColumns(table: TargetTable, sourceColumns: string[]) {
  const have = new Set(sourceColumns);
  return table.columns.filter((c) => !c.generated && have.has(c.name));
}

/**
 * " order by <primary key>" when SQLite can read the table in that order for free (an index holding every column we
 * read, or the rowid), else "". PostgreSQL then builds the primary key from (nearly) presorted rows, which its sort
 * notices (measured: 7.6 s instead of 10.0 s for MLflow's 6-column metrics key over 5M rows).
 */
export function keyOrder(db: Database.Database, table: string, columns: string[]): string {
  const pk = (db.prepare(`select name, pk from pragma_table_info(?) where pk > 0 order by pk`).all(table) as { name: string }[]).map((r) => r.name);
  if (pk.length === 0) return "";
  const order = ` order by ${pk.map(quoteSqlite).join(", ")}`;
  const plan = (db.prepare(`explain query plan select ${columns.map(quoteSqlite).join(", ")} from ${quoteSqlite(table)}${order}`).all() as { detail: string }[]).map((r) => r.detail);
  const free = plan.length === 1 && !/TEMP B-TREE/.test(plan[0]) && (/COVERING INDEX|INTEGER PRIMARY KEY/.test(plan[0]) || /^SCAN \S+$/.test(plan[0]));
  return free ? order : "";
}

/** Tables with at least this many rows are read and encoded by worker threads (copy-worker.ts), in rowid ranges. */
export const PARALLEL_ROWS = 100_000;

export async function copyTable(opts: {
  client: pg.Client;
  db: Database.Database;
  sourcePath: string;
  table: TargetTable;
  sourceColumns: string[];
  total: number;
  freeze: boolean;
  rowHash: RowHash;
  /**
   * Worker threads encoding a big table in rowid ranges (text format); 0 (the default) = read in this thread, in
   * primary-key order, binary format. Measured on a busy 2-core machine the range workers
   * did not pay off (the copy was not faster; rowid order makes the key build slower; each worker adds ~90 MB RSS), so
   * they are opt-in (--workers) for machines with idle cores.
   */
  workers?: number;
  onProgress?: (p: CopyProgress) => void;
  /**
   * Read in pages by primary key (readRows; default true). False when a key column holds text that is not valid UTF-8
   * (--replace-invalid-text): the value read is not the one stored, so it cannot be the next page's lower bound.
   */
  paged?: boolean;
}): Promise<Checksum> {
  const { client, db, table, total, onProgress } = opts;
  const cols = sharedColumns(table, opts.sourceColumns);
  if (cols.length === 0 || total === 0) return { rows: 0, sum: "0" };
  const workers = Math.min(opts.workers ?? 0, availableParallelism() * 2);
  const ranges = total >= PARALLEL_ROWS && workers > 1 ? rowidRanges(db, table.name, workers) : undefined;
  // Binary when every column's type has a binary form we write (binary.ts), read in this thread.
  const writers = ranges ? undefined : binaryWriters(table.name, cols);
  const copyOptions = [...(writers ? ["format binary"] : []), ...(opts.freeze ? ["freeze"] : [])];
  const copySql = `copy ${table.qualified} (${cols.map((c) => c.quoted).join(", ")}) from stdin${copyOptions.length ? ` with (${copyOptions.join(", ")})` : ""}`;
  const stream = client.query(copyFrom(copySql));
  const finished = new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
  finished.catch(() => {}); // observed below
  let failed: unknown;
  stream.on("error", (e) => (failed ??= e));
  const write = async (chunk: string | Buffer) => {
    if (failed) throw failed;
    if (!stream.write(chunk)) await Promise.race([once(stream, "drain"), finished]);
  };
  let result: Checksum;
  try {
    result = ranges
      ? await copyParallel({ path: opts.sourcePath, table: table.name, columns: cols, rowHash: opts.rowHash, ranges, total, write, onProgress })
      : await copySerial(db, table.name, cols, opts.rowHash, total, write, onProgress, writers, opts.paged ?? true);
  } catch (error) {
    stream.destroy();
    await finished.catch(() => {});
    throw sqliteFailure(opts.sourcePath, error) ?? error;
  }
  stream.end();
  await finished;
  onProgress?.({ table: table.name, done: result.rows, total });
  return result;
}

async function copySerial(
  db: Database.Database,
  table: string,
  cols: TargetColumn[],
  rowHash: RowHash,
  total: number,
  write: (chunk: string | Buffer) => Promise<void>,
  onProgress: ((p: CopyProgress) => void) | undefined,
  writers: BinaryWriter[] | undefined,
  paged: boolean,
): Promise<Checksum> {
  const enc = new RowEncoder(table, cols, rowHash);
  const rows = readRows(db, table, cols.map((c) => c.name), { paged });
  if (writers) {
    const bin = new BinaryRows(writers);
    let chunks = 0;
    for (const page of rows) {
      for (const row of page) {
        enc.hash(row);
        const chunk = bin.add(row);
        if (chunk) {
          await write(chunk);
          if ((++chunks & 7) === 0) onProgress?.({ table, done: bin.rows, total });
        }
      }
    }
    await write(bin.end());
    return { rows: bin.rows, sum: enc.sum.value().toString() };
  }
  let buf = "";
  for (const page of rows) {
    for (const row of page) {
      buf += enc.line(row);
      if (buf.length >= CHUNK) {
        await write(buf);
        buf = "";
        if ((enc.rows & 0x3fff) === 0) onProgress?.({ table, done: enc.rows, total });
      }
    }
  }
  if (buf) await write(buf);
  return { rows: enc.rows, sum: enc.sum.value().toString() };
}

/** Rows per page of readRows. */
export const PAGE_ROWS = 1024;

/**
 * The rows of `table` (the given columns, raw arrays), in pages. In primary-key order when SQLite has it for free
 * (keyOrder), read PAGE_ROWS at a time by key ("where (pk) > (last page's last key) order by pk limit N"): one call into
 * SQLite per page instead of one per row of a long iterate(). A table without such an order, or `paged: false`, is
 * read by one iterate() (yielded in pages all the same).
 */
export function* readRows(db: Database.Database, table: string, columns: string[], { paged = true, pageRows = PAGE_ROWS }: { paged?: boolean; pageRows?: number } = {}): Generator<SqliteValue[][]> {
  const order = keyOrder(db, table, columns);
  const select = `select ${columns.map(quoteSqlite).join(", ")} from ${quoteSqlite(table)}`;
  const pk = order ? (db.prepare(`select name from pragma_table_info(?) where pk > 0 order by pk`).pluck().all(table) as string[]) : [];
  // The key's positions among the columns read (every key column must be read: the covering index holds them).
  const at = pk.map((k) => columns.indexOf(k));
  if (!paged || !order || at.some((i) => i < 0)) {
    let page: SqliteValue[][] = [];
    for (const row of db.prepare(select + order).raw(true).iterate() as IterableIterator<SqliteValue[]>) {
      page.push(row);
      if (page.length === pageRows) (yield page), (page = []);
    }
    if (page.length) yield page;
    return;
  }
  const first = db.prepare(`${select}${order} limit ${pageRows}`).raw(true);
  const next = db.prepare(`${select} where (${pk.map(quoteSqlite).join(", ")}) > (${pk.map(() => "?").join(", ")})${order} limit ${pageRows}`).raw(true);
  let page = first.all() as SqliteValue[][];
  while (page.length) {
    yield page;
    if (page.length < pageRows) return;
    const last = page[page.length - 1];
    page = next.all(...at.map((i) => last[i])) as SqliteValue[][];
  }
}

/** The binary writer of every column (binary.ts), or undefined when one of them must go as text. */
function binaryWriters(table: string, cols: TargetColumn[]): BinaryWriter[] | undefined {
  const writers: BinaryWriter[] = [];
  for (const c of cols) {
    const w = binaryWriter(c.type, () => `${table}.${c.name}`);
    if (!w) return undefined;
    writers.push(w);
  }
  return writers;
}

/**
 * Whether another connection to the source file is sure to read the snapshot of ours: not in WAL mode (there it could
 * see a later one); in rollback-journal mode the read transaction we hold keeps every writer out.
 */
function sameSnapshot(db: Database.Database): boolean {
  return String(db.pragma("journal_mode", { simple: true })).toLowerCase() !== "wal";
}

/**
 * Rowid ranges [from, to) splitting the table in `n`, or undefined when the table must be read in one thread: no
 * rowid (WITHOUT ROWID), or a database in WAL mode — there other connections (the workers') could see a later
 * snapshot than ours; in rollback-journal mode the read transaction we hold keeps every writer out.
 */
export function rowidRanges(db: Database.Database, table: string, n: number): [string, string][] | undefined {
  if (!sameSnapshot(db)) return undefined;
  let lo: bigint | null;
  let hi: bigint | null;
  try {
    ({ lo, hi } = db.prepare(`select min(rowid) as lo, max(rowid) as hi from ${quoteSqlite(table)}`).safeIntegers(true).get() as { lo: bigint | null; hi: bigint | null });
  } catch {
    return undefined;
  }
  if (lo === null || hi === null) return undefined;
  const span = hi - lo + 1n;
  const out: [string, string][] = [];
  for (let i = 0n; i < BigInt(n); i++) out.push([(lo + (span * i) / BigInt(n)).toString(), (lo + (span * (i + 1n)) / BigInt(n)).toString()]);
  return out;
}

async function copyParallel(o: {
  path: string;
  table: string;
  columns: TargetColumn[];
  rowHash: RowHash;
  ranges: [string, string][];
  total: number;
  write: (chunk: Buffer) => Promise<void>;
  onProgress?: (p: CopyProgress) => void;
  /**
   * Read in pages by primary key (readRows; default true). False when a key column holds text that is not valid UTF-8
   * (--replace-invalid-text): the value read is not the one stored, so it cannot be the next page's lower bound.
   */
  paged?: boolean;
}): Promise<Checksum> {
  let rows = 0;
  let sum = 0n;
  let done = 0;
  let queue = Promise.resolve();
  let finishedWorkers = 0;
  const started: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown) => {
        if (!settled) (settled = true), reject(error);
      };
      for (const range of o.ranges) {
        // Credits: how many chunks the worker may send ahead of what we wrote (bounded memory).
        const credits = new Int32Array(new SharedArrayBuffer(4));
        Atomics.store(credits, 0, 4);
        const data: WorkerInput = { path: o.path, table: o.table, columns: o.columns.map((c) => ({ name: c.name, kind: c.kind })), rowHash: o.rowHash, range, credits };
        const w = startWorker(data);
        started.push(w);
        w.on("message", (m: WorkerMessage) => {
          if (m.type === "chunk") {
            queue = queue.then(async () => {
              if (settled) return;
              await o.write(Buffer.from(m.bytes));
              done += m.rows;
              o.onProgress?.({ table: o.table, done, total: o.total });
              Atomics.add(credits, 0, 1);
              Atomics.notify(credits, 0);
            });
            queue.catch(fail);
          } else if (m.type === "done") {
            queue = queue.then(() => {
              rows += m.rows;
              sum += BigInt(m.sum);
              if (++finishedWorkers === o.ranges.length && !settled) (settled = true), resolve();
            });
          } else {
            fail(m.user ? new UserError(m.message) : Object.assign(new Error(m.message), { code: m.code }));
          }
        });
        w.on("error", fail);
        w.on("exit", (code) => code !== 0 && fail(new Error(`copy worker for ${o.table} exited with ${code}`)));
      }
    });
    await queue;
  } finally {
    await Promise.all(started.map((w) => w.terminate()));
  }
  return { rows, sum: sum.toString() };
}

/** What a copy worker is given (see copy-worker.ts). */
export interface WorkerInput {
  path: string;
  table: string;
  columns: { name: string; kind: Kind }[];
  rowHash: RowHash;
  /** The rowid range to encode. */
  range: [string, string];
  credits: Int32Array;
}

export type WorkerMessage =
  | { type: "chunk"; bytes: ArrayBuffer; rows: number }
  | { type: "done"; rows: number; sum: string }
  | { type: "error"; message: string; code?: string; user: boolean };

const require = createRequire(import.meta.url);

/**
 * Starts copy-worker.ts in a worker thread. The worker is TypeScript: it registers tsx's loader first, so the same
 * code runs under `npm run` (tsx) and under vitest.
 */
function startWorker(data: WorkerInput): Worker {
  const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "esm", "api", "index.mjs");
  const worker = new URL("./copy-worker.ts", import.meta.url).href;
  const boot = `import(${JSON.stringify(pathToFileURL(tsx).href)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}
