// Copies one table: streams the SQLite rows through COPY ... FROM STDIN (binary format when every column's type allows,
// see binary.ts; else text) and, from the same source values, computes the order-independent checksum that verify.ts
// compares with PostgreSQL's own. Rows are read in pages in primary-key order (read-rows.ts); a big table is read and
// encoded in lanes (lanes.ts): page p by lane p mod N, lane 0 in this thread and the others in worker threads, written
// in page order, so PostgreSQL receives the rows in key order either way.
import type Database from "./sqlite.ts";
import { once } from "node:events";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { BINARY_HEADER, BINARY_TRAILER } from "./binary.ts";
import { FileRows, fileScan } from "./file-rows.ts";
import { LaneWorker } from "./lanes.ts";
import { binaryWriters, PageEncoder, type PageColumn } from "./page-encoder.ts";
import { PAGE_ROWS, pagedByKey, readRows, sameSnapshot } from "./read-rows.ts";
import type { Checksum, RowHash } from "./row-encoder.ts";
import { sqliteFailure } from "./source.ts";
import { SqliteFile } from "./sqlite-file.ts";
import type { TargetTable } from "./target.ts";

export interface CopyProgress {
  table: string;
  done: number;
  total: number;
}

/** Columns of `table` that both sides have, in the target's order (generated ones excluded). */
export function sharedColumns(table: TargetTable, sourceColumns: string[]) {
  const have = new Set(sourceColumns);
  return table.columns.filter((c) => !c.generated && have.has(c.name));
}

/** Tables with at least this many rows are read in lanes (when the table and the source allow, see `lanesFor`). */
export const PARALLEL_ROWS = 100_000;

/**
 * Default lanes: 1. On 2 cores a second lane did not make the copy faster (measured: both lanes' SQLite reads slow
 * down when run together, and they share the cores with the server's COPY); --workers N adds lanes for idle cores.
 */
const DEFAULT_LANES = 1;

/**
 * How many lanes read `table`: 1 (this thread only) for a small table, one that cannot be paged by key (the pages
 * are found by key), or a source in WAL mode (another connection could see a later snapshot than ours; in
 * rollback-journal mode the read transaction we hold keeps every writer out).
 */
export function lanesFor(db: Database.Database, table: string, columns: string[], o: { total: number; lanes: number; paged: boolean }): number {
  if (o.lanes <= 1 || o.total < PARALLEL_ROWS || !o.paged) return 1;
  return sameSnapshot(db) && pagedByKey(db, table, columns) ? o.lanes : 1;
}

export async function copyTable(opts: {
  client: pg.Client;
  db: Database.Database;
  sourcePath: string;
  table: TargetTable;
  sourceColumns: string[];
  total: number;
  freeze: boolean;
  rowHash: RowHash;
  /** Lanes reading and encoding a big table (this thread + lanes - 1 workers); default 1 (DEFAULT_LANES). */
  lanes?: number;
  onProgress?: (p: CopyProgress) => void;
  /**
   * Read in pages by primary key (readRows; default true). False when a key column holds text that is not valid UTF-8
   * (--replace-invalid-text): the value read is not the one stored, so it cannot be the next page's lower bound.
   */
  paged?: boolean;
  /** Read every table through SQLite (readRows), never straight from the file (file-rows.ts). */
  sqliteReader?: boolean;
}): Promise<Checksum> {
  const { client, db, table, total, onProgress } = opts;
  const cols = sharedColumns(table, opts.sourceColumns);
  if (cols.length === 0 || total === 0) return { rows: 0, sum: "0" };
  const columns: PageColumn[] = cols.map((c) => ({ name: c.name, kind: c.kind, type: c.type }));
  const names = cols.map((c) => c.name);
  const binary = binaryWriters(table.name, columns) !== undefined;
  const paged = opts.paged ?? true;
  const lanes = lanesFor(db, table.name, names, { total, lanes: opts.lanes ?? DEFAULT_LANES, paged });
  const copyOptions = [...(binary ? ["format binary"] : []), ...(opts.freeze ? ["freeze"] : [])];
  const copySql = `copy ${table.qualified} (${cols.map((c) => c.quoted).join(", ")}) from stdin${copyOptions.length ? ` with (${copyOptions.join(", ")})` : ""}`;
  const stream = client.query(copyFrom(copySql));
  const finished = new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
  finished.catch(() => {}); // observed below
  let failed: unknown;
  stream.on("error", (e) => (failed ??= e));
  const write = async (chunk: Buffer) => {
    if (failed) throw failed;
    if (!stream.write(chunk)) await Promise.race([once(stream, "drain"), finished]);
  };
  const workers: LaneWorker[] = [];
  let rows = 0;
  let sum = 0n;
  let reader: Checksum["reader"] = "sqlite";
  try {
    for (let lane = 1; lane < lanes; lane++) {
      workers.push(new LaneWorker({ path: opts.sourcePath, table: table.name, columns, rowHash: opts.rowHash, binary, lane, lanes, pageRows: PAGE_ROWS }));
    }
    const scan = lanes === 1 && paged && binary && opts.rowHash === "record" && !opts.sqliteReader ? fileScan(db, opts.sourcePath, table.name, names) : undefined;
    if (scan) {
      const file = new SqliteFile(opts.sourcePath);
      try {
        const fileRows = new FileRows(file, db, table.name, columns, scan);
        await write(BINARY_HEADER);
        for (let chunk = fileRows.next(); chunk; chunk = fileRows.next()) {
          await write(chunk); // before the next: FileRows fills this buffer again after it
          onProgress?.({ table: table.name, done: fileRows.rows, total });
        }
        await write(BINARY_TRAILER);
        ({ rows } = fileRows);
        sum = fileRows.sum.value();
        reader = "file";
      } finally {
        file.close();
      }
    } else {
      const enc = new PageEncoder(table.name, columns, opts.rowHash, binary, { batch: lanes === 1 });
      const own = readRows(db, table.name, names, { paged, lane: 0, lanes });
      if (binary) await write(BINARY_HEADER);
      for (let p = 0; ; p++) {
        const lane = p % lanes;
        if (lane === 0) {
          const next = own.next();
          if (next.done) break;
          for (const chunk of enc.encode(next.value)) await write(chunk);
          rows += next.value.length;
        } else {
          const page = await workers[lane - 1].next();
          if (!page) break; // every later page is empty too: the pages are consecutive runs of the key order
          await write(page.bytes);
          rows += page.rows;
        }
        if ((p & 7) === 7) onProgress?.({ table: table.name, done: rows, total });
      }
      const rest = enc.rest();
      if (rest) await write(rest);
      if (binary) await write(BINARY_TRAILER);
      const parts = [enc.checksum()];
      for (const w of workers) {
        if (await w.next()) throw new Error(`a lane of ${table.name} had a page after the last one`);
        parts.push(w.result());
      }
      const hashed = parts.reduce((n, c) => n + c.rows, 0);
      if (hashed !== rows) throw new Error(`the lanes of ${table.name} hashed ${hashed} rows but ${rows} were written`);
      sum = parts.reduce((a, c) => a + BigInt(c.sum), 0n);
    }
  } catch (error) {
    stream.destroy();
    await finished.catch(() => {});
    throw sqliteFailure(opts.sourcePath, error) ?? error;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  stream.end();
  await finished;
  onProgress?.({ table: table.name, done: rows, total });
  return { rows, sum: sum.toString(), reader };
}
