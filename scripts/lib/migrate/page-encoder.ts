// A page of source rows (readRows) as the bytes COPY ... FROM STDIN reads — binary rows without the stream's header
// and trailer (binary.ts) or text lines — and each row's hash added to the verification checksum. The same code in the
// copying thread and in lane worker threads (lanes.ts), so every lane encodes and hashes alike.
import { BinaryRows, binaryWriter, type BinaryWriter } from "./binary.ts";
import type { Kind, SqliteValue } from "./convert.ts";
import { RowEncoder, type Checksum, type RowHash } from "./row-encoder.ts";

export interface PageColumn {
  name: string;
  kind: Kind;
  /** PostgreSQL type (target.ts). */
  type: string;
}

/** The binary writer of every column (binary.ts), or undefined when one of them must go as text. */
export function binaryWriters(table: string, cols: PageColumn[]): BinaryWriter[] | undefined {
  const writers: BinaryWriter[] = [];
  for (const c of cols) {
    const w = binaryWriter(c.type, () => `${table}.${c.name}`);
    if (!w) return undefined;
    writers.push(w);
  }
  return writers;
}

/** About this many bytes per write when pages are batched (fewer, larger socket writes). */
const CHUNK = 256 * 1024;

export class PageEncoder {
  private readonly enc: RowEncoder;
  private readonly bin: BinaryRows | undefined;
  private readonly batch: boolean;
  private text = "";
  rows = 0;

  /**
   * `binary`: every column has a binary writer (binaryWriters), else text lines. `batch`: encode() hands out chunks of
   * about 256 KiB, whatever the pages (one reader); else one buffer per page, of its own (lanes: pages are reordered
   * and cross threads).
   */
  constructor(table: string, cols: PageColumn[], rowHash: RowHash, binary: boolean, { batch = false }: { batch?: boolean } = {}) {
    this.enc = new RowEncoder(table, cols, rowHash);
    const writers = binary ? binaryWriters(table, cols) : undefined;
    if (binary && !writers) throw new Error(`${table}: a column has no binary form; encode it as text`);
    this.bin = writers && new BinaryRows(writers, { header: false });
    this.batch = batch;
  }

  /** Hashes and encodes the page; returns the COPY bytes ready to send (batched: possibly none yet; see rest()). */
  encode(page: SqliteValue[][]): Buffer[] {
    const { enc, bin } = this;
    this.rows += page.length;
    const out: Buffer[] = [];
    if (bin) {
      for (const row of page) {
        enc.hash(row);
        const full = bin.add(row); // a chunk of about 256 KiB (a page of wide rows can pass that too)
        if (full) out.push(full);
      }
      if (this.batch) return out;
      return [out.length ? own(Buffer.concat([...out, bin.takeRows()])) : bin.takeRows()];
    }
    for (const row of page) {
      enc.hash(row);
      this.text += enc.copyLine(row);
    }
    if (this.batch && this.text.length < CHUNK) return out;
    out.push(own(Buffer.from(this.text, "utf8")));
    this.text = "";
    return out;
  }

  /** What encode() has not handed out yet (batched). */
  rest(): Buffer | undefined {
    const b = this.bin ? this.bin.takeRows() : Buffer.from(this.text, "utf8");
    this.text = "";
    return b.length ? b : undefined;
  }

  checksum(): Checksum {
    return { rows: this.rows, sum: this.enc.sum.value().toString() };
  }
}

/** `b` itself when it is the whole of its ArrayBuffer, else a copy that is (a pooled small Buffer shares its memory). */
function own(b: Buffer): Buffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  const out = Buffer.allocUnsafeSlow(b.length);
  b.copy(out);
  return out;
}
