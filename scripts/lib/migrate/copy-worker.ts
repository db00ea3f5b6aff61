// A worker thread of copy.ts (--workers), on its own read-only connection: encodes the rows of a rowid range (COPY text
// + row hashes, RowEncoder) and posts 256 KiB chunks back, never more ahead than its credits allow.
import Database from "./sqlite.ts";
import { parentPort, workerData } from "node:worker_threads";
import { UserError } from "../cli.ts";
import type { WorkerInput, WorkerMessage } from "./copy.ts";
import { RowEncoder } from "./row-encoder.ts";
import type { SqliteValue } from "./convert.ts";
import { quoteSqlite } from "./source.ts";

const CHUNK = 256 * 1024;
const input = workerData as WorkerInput;
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

function send(text: string, rows: number) {
  const credits = input.credits;
  while (Atomics.load(credits, 0) <= 0) Atomics.wait(credits, 0, 0, 1000);
  Atomics.sub(credits, 0, 1);
  const bytes = Buffer.from(text, "utf8");
  // A fresh ArrayBuffer of exactly these bytes, handed over without a copy.
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  post({ type: "chunk", bytes: ab, rows }, [ab]);
}

try {
  const db = new Database(input.path, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  const names = input.columns.map((c) => quoteSqlite(c.name)).join(", ");
  const enc = new RowEncoder(input.table, input.columns, input.rowHash);
  const stmt = db.prepare(`select ${names} from ${quoteSqlite(input.table)} where rowid >= ? and rowid < ?`).raw(true);
  let buf = "";
  let pending = 0;
  for (const row of stmt.iterate(BigInt(input.range[0]), BigInt(input.range[1])) as IterableIterator<SqliteValue[]>) {
    buf += enc.line(row);
    pending++;
    if (buf.length >= CHUNK) {
      send(buf, pending);
      buf = "";
      pending = 0;
    }
  }
  if (buf) send(buf, pending);
  db.close();
  post({ type: "done", rows: enc.rows, sum: enc.sum.value().toString() });
} catch (error) {
  const e = error as { message?: string; code?: string };
  post({ type: "error", message: e.message ?? String(error), code: e.code, user: error instanceof UserError });
}
