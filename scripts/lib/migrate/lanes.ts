// Reading and encoding a big table in N lanes: lane 0 in the copying thread, lanes 1..N-1 in worker threads
// (lane-worker.ts), each on its own read-only connection to the source, page p read by lane p mod N (readRows). The
// copying thread writes the pages in page order, so the COPY stream holds the rows in key order as one reader would
// send them, and sums the lanes' checksums. A worker is never more than CREDITS pages ahead of what was written.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { UserError } from "../cli.ts";
import type { PageColumn } from "./page-encoder.ts";
import type { Checksum, RowHash } from "./row-encoder.ts";

/** Pages a worker may encode ahead of the writer. */
const CREDITS = 4;

/** What a lane worker is given (see lane-worker.ts). */
export interface LaneInput {
  path: string;
  table: string;
  columns: PageColumn[];
  rowHash: RowHash;
  binary: boolean;
  lane: number;
  lanes: number;
  pageRows: number;
  /** Pages the worker may still send before it must wait (it takes one per page; the writer gives one back). */
  credits: Int32Array;
}

export type LaneMessage =
  | { type: "page"; bytes: ArrayBuffer; rows: number }
  | { type: "done"; checksum: Checksum }
  | { type: "error"; message: string; code?: string; user: boolean };

/** One worker lane, as the writer sees it: its pages in order, then its checksum. */
export class LaneWorker {
  private readonly worker: Worker;
  private readonly credits = new Int32Array(new SharedArrayBuffer(4));
  private readonly pages: { bytes: Buffer; rows: number }[] = [];
  private waiting: (() => void) | undefined;
  private checksum: Checksum | undefined;
  private failure: Error | undefined;

  constructor(input: Omit<LaneInput, "credits">) {
    Atomics.store(this.credits, 0, CREDITS);
    this.worker = startWorker({ ...input, credits: this.credits });
    this.worker.on("message", (m: LaneMessage) => {
      if (m.type === "page") this.pages.push({ bytes: Buffer.from(m.bytes), rows: m.rows });
      else if (m.type === "done") this.checksum = m.checksum;
      else this.failure ??= m.user ? new UserError(m.message) : Object.assign(new Error(m.message), { code: m.code });
      this.wake();
    });
    this.worker.on("error", (e) => ((this.failure ??= e), this.wake()));
    this.worker.on("exit", (code) => {
      if (!this.checksum) this.failure ??= new Error(`lane worker for ${input.table} exited with ${code} before it finished`);
      this.wake();
    });
  }

  private wake() {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /** The lane's next page, or undefined when it has no more (its checksum is then known). */
  async next(): Promise<{ bytes: Buffer; rows: number } | undefined> {
    for (;;) {
      if (this.pages.length) {
        const page = this.pages.shift()!;
        Atomics.add(this.credits, 0, 1);
        Atomics.notify(this.credits, 0);
        return page;
      }
      if (this.failure) throw this.failure;
      if (this.checksum) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** The lane's checksum (after next() returned undefined). */
  result(): Checksum {
    if (!this.checksum) throw new Error("lane worker has not finished");
    return this.checksum;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

const require = createRequire(import.meta.url);

/**
 * Starts lane-worker.ts in a worker thread. The worker is TypeScript: it registers tsx's loader first, so the same
 * code runs under `npm run` (tsx) and under vitest.
 */
function startWorker(data: LaneInput): Worker {
  const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "esm", "api", "index.mjs");
  const worker = new URL("./lane-worker.ts", import.meta.url).href;
  const boot = `import(${JSON.stringify(pathToFileURL(tsx).href)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}
