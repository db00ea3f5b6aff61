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

export class PageEncoder {
  private readonly enc: RowEncoder;
  private readonly bin: BinaryRows | undefined;
  rows = 0;

  /** `binary`: every column has a binary writer (binaryWriters), else text lines. */
  constructor(table: string, cols: PageColumn[], rowHash: RowHash, binary: boolean) {
    this.enc = new RowEncoder(table, cols, rowHash);
    const writers = binary ? binaryWriters(table, cols) : undefined;
    if (binary && !writers) throw new Error(`${table}: a column has no binary form; encode it as text`);
    this.bin = writers && new BinaryRows(writers, { header: false });
  }

  /** The page's COPY bytes, in one buffer of its own (transferable to another thread). */
  encode(page: SqliteValue[][]): Buffer {
    const { enc, bin } = this;
    if (bin) {
      let parts: Buffer[] | undefined;
      for (const row of page) {
        enc.hash(row);
        const full = bin.add(row); // only when one page of wide rows passes 256 KiB
        if (full) (parts ??= []).push(full);
      }
      this.rows += page.length;
      return parts ? own(Buffer.concat([...parts, bin.takeRows()])) : bin.takeRows();
    }
    let text = "";
    for (const row of page) {
      enc.hash(row);
      text += enc.copyLine(row);
    }
    this.rows += page.length;
    return own(Buffer.from(text, "utf8"));
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
