// Reads an SQLite database file's b-trees and records straight from the file (https://www.sqlite.org/fileformat2.html),
// for the copy's fast path (file-rows.ts): no value is made into a JavaScript object unless it has to be, where
// better-sqlite3 makes one per column per row (the copy's measured hot spot). Only what a table scan needs: table and
// index b-trees in key order, overflow chains, record headers. The caller keeps SQLite's own read transaction open on
// the file meanwhile (source.ts), so the file cannot change under us (see fileReadable in file-rows.ts for when it may).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Thrown for a page or record that cannot be what SQLite wrote; sqliteFailure (source.ts) reports it as corrupt. */
export class CorruptFile extends Error {
  constructor(path: string, what: string) {
    super(`database disk image is malformed: ${path}: ${what}`);
  }
}

const MAGIC = "SQLite format 3\0";

export class SqliteFile {
  readonly path: string;
  readonly pageSize: number;
  /** Page size less the bytes reserved at the end of every page. */
  readonly usable: number;
  /** 1 = UTF-8, 2 = UTF-16le, 3 = UTF-16be. */
  readonly textEncoding: number;
  readonly pages: number;
  private readonly fd: number;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, "r");
    try {
      const header = Buffer.alloc(100);
      if (readSync(this.fd, header, 0, 100, 0) !== 100 || header.toString("latin1", 0, 16) !== MAGIC) throw new CorruptFile(path, "no SQLite header");
      const size = header.readUInt16BE(16);
      this.pageSize = size === 1 ? 65536 : size;
      if (this.pageSize < 512 || (this.pageSize & (this.pageSize - 1)) !== 0) throw new CorruptFile(path, `page size ${this.pageSize}`);
      this.usable = this.pageSize - header[20];
      this.textEncoding = header.readUInt32BE(56);
      this.pages = Math.floor(fstatSync(this.fd).size / this.pageSize);
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  /** Reads page `pgno` (1-based) into `into` (at least pageSize bytes). */
  read(pgno: number, into: Buffer) {
    if (!(pgno >= 1 && pgno <= this.pages)) throw new CorruptFile(this.path, `page ${pgno} is outside the file (${this.pages} pages)`);
    if (readSync(this.fd, into, 0, this.pageSize, (pgno - 1) * this.pageSize) !== this.pageSize) throw new CorruptFile(this.path, `short read of page ${pgno}`);
  }

  close() {
    closeSync(this.fd);
  }
}

/** End of the varint read by the last `varint` call. */
let varintEnd = 0;

/** The varint at buf[i] as a number (exact below 2^53; a 9-byte one, i.e. negative, is not: see BtreeCursor.rowid). */
function varint(buf: Buffer, i: number): number {
  let b = buf[i];
  if (b < 0x80) {
    varintEnd = i + 1;
    return b;
  }
  let v = b & 0x7f;
  for (let k = 1; k < 8; k++) {
    b = buf[i + k];
    v = v * 128 + (b & 0x7f);
    if (b < 0x80) {
      varintEnd = i + k + 1;
      return v;
    }
  }
  varintEnd = i + 9;
  return v * 256 + buf[i + 8];
}

/** The 64-bit two's-complement varint at buf[i]. */
function varintBig(buf: Buffer, i: number): bigint {
  let v = 0n;
  for (let k = 0; k < 8; k++) {
    const b = buf[i + k];
    v = (v << 7n) | BigInt(b & 0x7f);
    if (b < 0x80) return v;
  }
  return BigInt.asIntN(64, (v << 8n) | BigInt(buf[i + 8]));
}

const TABLE_INTERIOR = 0x05;
const TABLE_LEAF = 0x0d;
const INDEX_INTERIOR = 0x02;
const INDEX_LEAF = 0x0a;
/** Deeper than any b-tree of a file that fits a 64-bit offset. */
const MAX_DEPTH = 40;

/**
 * Walks one b-tree in key order: a table's rows by rowid, an index's entries by key (an index keeps entries in its
 * interior pages too: each comes after its left child's subtree). After next() returns true, the cell's payload (a
 * record) is buf[start, end) and, in a table b-tree, its rowid is `rowid`.
 */
export class BtreeCursor {
  buf: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;
  /** The rowid (table b-trees), exact when `rowidBig` is undefined; else that holds it. */
  rowid = 0;
  rowidBig: bigint | undefined;
  /** Whether the current payload spilled onto overflow pages (assembled in a buffer of its own). */
  overflowed = false;

  private readonly file: SqliteFile;
  private readonly pageBufs: Buffer[] = [];
  /** Offset of the page header at each level (100 on page 1, after the file header). */
  private readonly hdr = new Int32Array(MAX_DEPTH);
  /** Offset of the cell pointer array at each level: after the 8-byte header, 12 on interior pages (right-most child). */
  private readonly cells = new Int32Array(MAX_DEPTH);
  private readonly kind = new Uint8Array(MAX_DEPTH);
  private readonly count = new Int32Array(MAX_DEPTH);
  /** Next step at each level: leaf: the next cell; table interior: the next child (count = the right-most one);
   * index interior: 2k = descend left of cell k, 2k + 1 = the entry of cell k, 2 * count = the right-most child. */
  private readonly step = new Int32Array(MAX_DEPTH);
  private depth = -1;
  private spill = Buffer.alloc(0);
  private readonly maxLocalTable: number;
  private readonly maxLocalIndex: number;
  private readonly minLocal: number;
  private readonly overflowPage: Buffer;
  private visited = 0;

  constructor(file: SqliteFile, root: number) {
    this.file = file;
    const u = file.usable;
    this.maxLocalTable = u - 35;
    this.maxLocalIndex = Math.floor(((u - 12) * 64) / 255) - 23;
    this.minLocal = Math.floor(((u - 12) * 32) / 255) - 23;
    this.overflowPage = Buffer.allocUnsafe(file.pageSize);
    this.push(root);
  }

  private corrupt(what: string): never {
    throw new CorruptFile(this.file.path, what);
  }

  private push(pgno: number) {
    const d = ++this.depth;
    if (d >= MAX_DEPTH) this.corrupt(`b-tree deeper than ${MAX_DEPTH} (a page loop?)`);
    if (++this.visited > this.file.pages) this.corrupt("a b-tree visits more pages than the file has (a page loop?)");
    const page = (this.pageBufs[d] ??= Buffer.allocUnsafe(this.file.pageSize));
    this.file.read(pgno, page);
    const h = pgno === 1 ? 100 : 0;
    const kind = page[h];
    if (kind !== TABLE_LEAF && kind !== TABLE_INTERIOR && kind !== INDEX_LEAF && kind !== INDEX_INTERIOR) this.corrupt(`page ${pgno} is not a b-tree page (type ${kind})`);
    if (d > 0 && (kind === TABLE_LEAF || kind === TABLE_INTERIOR) !== (this.kind[0] === TABLE_LEAF || this.kind[0] === TABLE_INTERIOR)) this.corrupt(`page ${pgno} mixes table and index b-trees`);
    this.hdr[d] = h;
    this.cells[d] = h + (kind === TABLE_INTERIOR || kind === INDEX_INTERIOR ? 12 : 8);
    this.kind[d] = kind;
    this.count[d] = page.readUInt16BE(h + 3);
    this.step[d] = 0;
  }

  /** Offset of cell `i` of the page at level `d`. */
  private cell(d: number, i: number): number {
    const off = this.pageBufs[d].readUInt16BE(this.cells[d] + 2 * i);
    if (off >= this.file.usable) this.corrupt(`cell offset ${off} past the page`);
    return off;
  }

  /** Moves to the next cell with a payload; false at the end of the b-tree. */
  next(): boolean {
    for (;;) {
      const d = this.depth;
      if (d < 0) return false;
      const page = this.pageBufs[d];
      const n = this.count[d];
      const s = this.step[d]++;
      switch (this.kind[d]) {
        case TABLE_LEAF: {
          if (s >= n) break;
          let i = this.cell(d, s);
          const size = varint(page, i);
          i = varintEnd;
          const r = varint(page, i);
          if (varintEnd - i === 9 || r > Number.MAX_SAFE_INTEGER) {
            this.rowidBig = varintBig(page, i);
            this.rowid = Number(this.rowidBig);
          } else {
            this.rowidBig = undefined;
            this.rowid = r;
          }
          this.payload(page, varintEnd, size, this.maxLocalTable);
          return true;
        }
        case INDEX_LEAF: {
          if (s >= n) break;
          const i = this.cell(d, s);
          const size = varint(page, i);
          this.payload(page, varintEnd, size, this.maxLocalIndex);
          return true;
        }
        case TABLE_INTERIOR: {
          if (s > n) break;
          this.push(s < n ? page.readUInt32BE(this.cell(d, s)) : page.readUInt32BE(this.hdr[d] + 8));
          continue;
        }
        case INDEX_INTERIOR: {
          if (s > 2 * n) break;
          if (s === 2 * n) this.push(page.readUInt32BE(this.hdr[d] + 8));
          else if ((s & 1) === 0) this.push(page.readUInt32BE(this.cell(d, s >> 1)));
          else {
            const i = this.cell(d, s >> 1) + 4;
            const size = varint(page, i);
            this.payload(page, varintEnd, size, this.maxLocalIndex);
            return true;
          }
          continue;
        }
      }
      this.depth--;
    }
  }

  /** Points buf/start/end at the payload of `size` bytes starting at page[at], following its overflow chain. */
  private payload(page: Buffer, at: number, size: number, maxLocal: number) {
    const u = this.file.usable;
    if (size <= maxLocal) {
      if (at + size > u) this.corrupt(`a payload of ${size} bytes runs past its page`);
      this.buf = page;
      this.start = at;
      this.end = at + size;
      this.overflowed = false;
      return;
    }
    const m = this.minLocal;
    const k = m + ((size - m) % (u - 4));
    const local = k <= maxLocal ? k : m;
    if (at + local + 4 > u) this.corrupt(`a payload of ${size} bytes runs past its page`);
    if (this.spill.length < size) this.spill = Buffer.allocUnsafe(Math.max(size, 2 * this.spill.length));
    const out = this.spill;
    page.copy(out, 0, at, at + local);
    let have = local;
    let next = page.readUInt32BE(at + local);
    const ov = this.overflowPage;
    let hops = 0;
    while (have < size) {
      if (next === 0 || ++hops > this.file.pages) this.corrupt(`an overflow chain ends ${size - have} bytes early`);
      this.file.read(next, ov);
      const take = Math.min(size - have, u - 4);
      ov.copy(out, have, 4, 4 + take);
      have += take;
      next = ov.readUInt32BE(0);
    }
    this.buf = out;
    this.start = 0;
    this.end = size;
    this.overflowed = true;
  }
}

/** Serial type codes (record format): 0 NULL, 1-6 integers of 1, 2, 3, 4, 6, 8 bytes, 7 a float, 8/9 the integers
 * 0/1, even >= 12 a blob of (t - 12) / 2 bytes, odd >= 13 text of (t - 13) / 2 bytes. */
export const SERIAL_SIZE = [0, 1, 2, 3, 4, 6, 8, 8, 0, 0];

/**
 * One record's header, parsed: after parse(), column i has serial type types[i] and its bytes start at offs[i] in the
 * buffer handed to parse (`count` columns; a table record may have fewer than the table: later ALTER TABLE ADD COLUMN).
 */
export class RecordHeader {
  count = 0;
  types = new Int32Array(16);
  offs = new Int32Array(16);
  /** Byte length of column i's value. */
  lens = new Int32Array(16);

  parse(buf: Buffer, start: number, end: number, path: string) {
    const hsize = varint(buf, start);
    let h = varintEnd;
    const hend = start + hsize;
    let off = hend;
    let n = 0;
    if (hend > end || hsize < 1) throw new CorruptFile(path, "a record header runs past its record");
    while (h < hend) {
      let t = buf[h];
      if (t < 0x80) h++;
      else {
        t = varint(buf, h);
        h = varintEnd;
      }
      const len = t < 12 ? SERIAL_SIZE[t] ?? 0 : (t - 12) >>> 1;
      if (n === this.types.length) this.grow();
      this.types[n] = t;
      this.offs[n] = off;
      this.lens[n] = len;
      off += len;
      n++;
    }
    if (off > end) throw new CorruptFile(path, "a record's values run past its payload");
    this.count = n;
  }

  private grow() {
    const g = (a: Int32Array) => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.types = g(this.types);
    this.offs = g(this.offs);
    this.lens = g(this.lens);
  }
}

/** The integer of serial type t (1-6, 8, 9) at buf[at], as a bigint. */
export function serialBigInt(buf: Buffer, at: number, t: number): bigint {
  switch (t) {
    case 8:
      return 0n;
    case 9:
      return 1n;
    case 6:
      return buf.readBigInt64BE(at);
    default:
      return BigInt(serialInt(buf, at, t));
  }
}

/** The integer of serial type t (1-5, 8, 9: at most 48 bits, exact as a number) at buf[at]. */
export function serialInt(buf: Buffer, at: number, t: number): number {
  switch (t) {
    case 1:
      return (buf[at] << 24) >> 24;
    case 2:
      return (buf[at] << 24 >> 16) | buf[at + 1];
    case 3:
      return (buf[at] << 24 >> 8) | (buf[at + 1] << 8) | buf[at + 2];
    case 4:
      return buf.readInt32BE(at);
    case 5:
      return ((buf[at] << 24) >> 16 | buf[at + 1]) * 4294967296 + buf.readUInt32BE(at + 2);
    case 8:
      return 0;
    case 9:
      return 1;
    default:
      return Number(buf.readBigInt64BE(at));
  }
}
