// COPY ... FROM STDIN WITH (FORMAT binary) for tables whose every column has a type we can send in PostgreSQL's binary
// form (integers, floats, booleans, bytea, text/varchar/json). Cheaper on both sides than the text format: no float or
// integer formatting here (the measured hot spot: String(double)), no parsing in the server, and floats travel as
// their 8 bytes. Anything else (jsonb, numeric, timestamps, ...) keeps the text format (copy.ts).
import { ConversionError, toBool, toIntText, toNumber, toText, type SqliteValue } from "./convert.ts";

export type BinaryWriter = (v: Exclude<SqliteValue, null>, w: BinaryRows) => void;

const INT_RANGE: Record<string, [bigint, bigint]> = {
  smallint: [-(2n ** 15n), 2n ** 15n - 1n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};

function intValue(v: Exclude<SqliteValue, null>, where: () => string, type: string): bigint {
  const n = typeof v === "bigint" ? v : BigInt(toIntText(v, where));
  const [lo, hi] = INT_RANGE[type];
  if (n < lo || n > hi) throw new ConversionError(`${where()}: ${n} is out of range for type ${type}`);
  return n;
}

/** How a non-null value of a column of PostgreSQL type `type` is written, or undefined: that type goes as text. */
export function binaryWriter(type: string, where: () => string): BinaryWriter | undefined {
  switch (type) {
    case "boolean":
      return (v, w) => w.byte(toBool(v, where) ? 1 : 0);
    // SQLite's INTEGER is a signed 64-bit value: a bigint read from it always fits bigint, and fits the narrower types
    // when its Number does (a bigint beyond 2^53 is out of their range either way); the rest goes the long way.
    case "smallint":
      return (v, w) => w.int16(typeof v === "bigint" && Math.abs(Number(v)) <= 32767 ? Number(v) : Number(intValue(v, where, type)));
    case "integer":
      return (v, w) => w.int32(typeof v === "bigint" && Math.abs(Number(v)) <= 2147483647 ? Number(v) : Number(intValue(v, where, type)));
    case "bigint":
      return (v, w) => w.int64(typeof v === "bigint" ? v : intValue(v, where, type));
    case "double precision":
      return (v, w) => w.float8(toNumber(v, where));
    case "real":
      return (v, w) => w.float4(toNumber(v, where));
    case "bytea":
      return (v, w) => w.bytes(Buffer.isBuffer(v) ? v : Buffer.from(toText(v), "utf8"));
    case "text":
    case "character varying":
    case "json": // json's binary form is its text (json_recv parses and checks it as json_in does)
      return (v, w) => w.text(toText(v));
    default:
      return undefined;
  }
}

/** The binary COPY stream's header (signature, flags, no extension) and trailer (field count -1). */
export const BINARY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);
const CHUNK = 256 * 1024;

/** Builds the binary COPY stream in chunks of about 256 KiB (each a fresh Buffer: the socket may still hold the last). */
export class BinaryRows {
  private buf = Buffer.allocUnsafe(2 * CHUNK);
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  private pos = 0;
  private readonly writers: BinaryWriter[];
  rows = 0;

  /** The chunk handed out before the last one, written by now: `recycle` fills it again. */
  private spare: typeof this.buf | undefined;
  private readonly recycle: boolean;

  /**
   * `header: false`: rows only (the caller sends BINARY_HEADER and BINARY_TRAILER itself, see page-encoder.ts).
   * `recycle`: the caller has written each chunk (to a socket, whose writes complete in order) before it asks for the
   * next, so the one before it is free: two buffers take turns instead of a fresh 512 KiB one per chunk (each page of
   * it faulted in anew, then unmapped).
   */
  constructor(writers: BinaryWriter[], { header = true, recycle = false }: { header?: boolean; recycle?: boolean } = {}) {
    this.writers = writers;
    this.recycle = recycle;
    if (header) {
      BINARY_HEADER.copy(this.buf, 0);
      this.pos = BINARY_HEADER.length;
    }
  }

  /** The rows added since the last call, in a buffer of their own (transferable to another thread); the working buffer is reused. */
  takeRows(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    return out;
  }

  /** Appends one row; returns a full chunk to send when there is one. */
  add(row: SqliteValue[]): Buffer | undefined {
    const { writers } = this;
    this.begin(writers.length);
    for (let i = 0; i < writers.length; i++) {
      const v = row[i];
      if (v === null) this.null();
      else writers[i](v, this);
    }
    return this.finish();
  }

  /** Starts a row of `fields` fields; the caller writes each (a writer, raw, int64Words, null), then calls finish(). */
  begin(fields: number) {
    this.ensure(2 + fields * 4);
    this.view.setInt16(this.pos, fields);
    this.pos += 2;
  }

  /** Ends the row begun; returns a full chunk to send when there is one. */
  finish(): Buffer | undefined {
    this.rows++;
    return this.pos >= CHUNK ? this.take(2 * CHUNK) : undefined;
  }

  /** The rest of the stream, with the trailer. */
  end(): Buffer {
    this.ensure(2);
    this.view.setInt16(this.pos, -1);
    this.pos += 2;
    return this.take(0);
  }

  private take(next: number): Buffer {
    const out = this.buf.subarray(0, this.pos);
    const spare = this.spare;
    this.spare = this.recycle ? this.buf : undefined;
    this.buf = spare && spare.length >= next ? spare : Buffer.allocUnsafe(next);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.pos = 0;
    return out;
  }

  private ensure(n: number) {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  }

  private field(len: number) {
    this.ensure(4 + len);
    this.view.setInt32(this.pos, len);
    this.pos += 4;
  }

  null() {
    this.ensure(4);
    this.view.setInt32(this.pos, -1);
    this.pos += 4;
  }
  /** A field of src[start, start + len) as it is (already in PostgreSQL's binary form). */
  raw(src: Buffer, start: number, len: number) {
    this.field(len);
    const { buf } = this;
    let p = this.pos;
    if (len <= 48) for (let i = start, e = start + len; i < e; i++) buf[p++] = src[i];
    else src.copy(buf, p, start, start + len);
    this.pos += len;
  }
  /** A bigint field from its high 32 bits (signed) and low 32 bits (either sign). */
  int64Words(hi: number, lo: number) {
    this.field(8);
    this.view.setInt32(this.pos, hi);
    this.view.setInt32(this.pos + 4, lo | 0);
    this.pos += 8;
  }
  byte(b: number) {
    this.field(1);
    this.buf[this.pos++] = b;
  }
  int16(n: number) {
    this.field(2);
    this.view.setInt16(this.pos, n);
    this.pos += 2;
  }
  int32(n: number) {
    this.field(4);
    this.view.setInt32(this.pos, n);
    this.pos += 4;
  }
  int64(n: bigint) {
    this.field(8);
    this.view.setBigInt64(this.pos, n);
    this.pos += 8;
  }
  float8(x: number) {
    this.field(8);
    // PostgreSQL's NaN (what float8in('NaN') stores), whatever NaN bits this engine has.
    if (Number.isNaN(x)) {
      this.view.setUint32(this.pos, 0x7ff80000);
      this.view.setUint32(this.pos + 4, 0);
    } else this.view.setFloat64(this.pos, x);
    this.pos += 8;
  }
  float4(x: number) {
    this.field(4);
    if (Number.isNaN(x)) this.view.setUint32(this.pos, 0x7fc00000);
    else this.view.setFloat32(this.pos, x);
    this.pos += 4;
  }
  bytes(b: Buffer) {
    this.field(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  text(s: string) {
    // Length unknown until written: reserve the worst case (3 bytes per UTF-16 unit), write, then fill the length in.
    this.ensure(4 + s.length * 3);
    const len = this.buf.write(s, this.pos + 4, "utf8");
    this.view.setInt32(this.pos, len);
    this.pos += 4 + len;
  }
}
