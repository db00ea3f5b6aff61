// A lane of lanes.ts in a worker thread, on its own read-only connection to the source: reads its pages (readRows:
// page p when p mod lanes = lane), encodes and hashes each (PageEncoder) and posts it, never more pages ahead than its
// credits allow; then its checksum.
import Database from "./sqlite.ts";
import { parentPort, workerData } from "node:worker_threads";
import { UserError } from "../cli.ts";
import type { LaneInput, LaneMessage } from "./lanes.ts";
import { PageEncoder } from "./page-encoder.ts";
import { readRows } from "./read-rows.ts";

const input = workerData as LaneInput;
const post = (m: LaneMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

try {
  const db = new Database(input.path, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  db.exec("BEGIN");
  const enc = new PageEncoder(input.table, input.columns, input.rowHash, input.binary);
  const { credits } = input;
  for (const page of readRows(db, input.table, input.columns.map((c) => c.name), { lane: input.lane, lanes: input.lanes, pageRows: input.pageRows })) {
    const [bytes] = enc.encode(page); // one buffer per page (not batched)
    while (Atomics.load(credits, 0) <= 0) Atomics.wait(credits, 0, 0, 1000);
    Atomics.sub(credits, 0, 1);
    const ab = bytes.buffer as ArrayBuffer; // the page's own buffer (PageEncoder), handed over without a copy
    post({ type: "page", bytes: ab, rows: page.length }, [ab]);
  }
  db.close();
  post({ type: "done", checksum: enc.checksum() });
} catch (error) {
  const e = error as { message?: string; code?: string };
  post({ type: "error", message: e.message ?? String(error), code: e.code, user: error instanceof UserError });
}
