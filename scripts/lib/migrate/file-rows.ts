// The copy's fast path: a table's rows read straight from the SQLite file (sqlite-file.ts) into binary COPY rows and
// the verification checksum. A value already in PostgreSQL's binary form on disk goes byte for byte and is hashed from
// those bytes: text (UTF-8 both sides), 8-byte floats (big-endian both sides), integers (widened to 8 bytes). Every
// other value is decoded as better-sqlite3 would hand it over (safeIntegers) and takes the path of readRows' values
// (binary.ts writers, record-hash.ts). Measured on 5M metrics rows: better-sqlite3 alone made 1.1 CPU-s per million
// rows into JavaScript values; this reads, encodes and hashes them in about a third of that.
//
// SQLite itself still checks the reader: migrate.ts compares the rows read with SQLite's count(*), and the first row,
// every 4096th after it, the first 1024 rows stored on overflow pages and every 64th after them are read again through
// SQLite and compared value by value.
import { existsSync, statSync } from "node:fs";
import { binaryWriter, BinaryRows, type BinaryWriter } from "./binary.ts";
import { describe, type SqliteValue } from "./convert.ts";
import type { PageColumn } from "./page-encoder.ts";
import { keyOrderPlan } from "./read-rows.ts";
import { hashValue, kindCode } from "./record-hash.ts";
import type { Checksum } from "./row-encoder.ts";
import { hashBytes, hashFloat8, hashInt8Words, hashUint32, HashSum } from "./rowhash.ts";
import { quoteSqlite } from "./source.ts";
import type Database from "./sqlite.ts";
import { BtreeCursor, RecordHeader, serialBigInt, serialInt, type SqliteFile } from "./sqlite-file.ts";

/** Where a table's columns are in the file. */
export interface FileScan {
  /** Root page of the b-tree read: the covering index that gives the primary-key order (readRows' order), else the table. */
  root: number;
  index: boolean;
  /** Per column read: its position in the b-tree's records, or -1 for the rowid (an INTEGER PRIMARY KEY). */
  at: number[];
  /** Position of the rowid in an index record (-1 in a table b-tree: the cell has it). */
  rowidAt: number;
  /** Per column: REAL affinity (SQLite stores a whole float there as an integer and reads it back as a float). */
  real: boolean[];
}

/** SQLite's affinity rules (https://www.sqlite.org/datatype3.html#determination_of_column_affinity), REAL or not. */
function realAffinity(declared: string): boolean {
  const t = declared.toUpperCase();
  if (t.includes("INT") || t.includes("CHAR") || t.includes("CLOB") || t.includes("TEXT") || t.includes("BLOB")) return false;
  return t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB");
}

/**
 * How `columns` of `table` can be read from the file, or undefined: then readRows reads them through SQLite. Not for a
 * WAL-mode source with a non-empty -wal file (rows of our snapshot may be there, not in the database file), a text
 * encoding other than UTF-8, a WITHOUT ROWID or virtual table, or a VIRTUAL generated column among those read.
 */
export function fileScan(db: Database.Database, path: string, table: string, columns: string[]): FileScan | undefined {
  if (String(db.pragma("encoding", { simple: true })) !== "UTF-8") return undefined;
  if (String(db.pragma("journal_mode", { simple: true })).toLowerCase() === "wal") {
    const wal = `${path}-wal`;
    if (existsSync(wal) && statSync(wal).size > 0) return undefined;
  }
  const list = db.prepare("select type, wr from pragma_table_list(?) where schema = 'main'").get(table) as { type: string; wr: bigint } | undefined;
  if (!list || list.type !== "table" || Number(list.wr) !== 0) return undefined;
  const info = db.prepare("select cid, name, type, pk, hidden from pragma_table_xinfo(?) order by cid").all(table) as { cid: bigint; name: string; type: string; pk: bigint; hidden: bigint }[];
  // hidden: 1 a virtual table's hidden column, 2 a VIRTUAL generated column (not in the record), 3 a STORED one (in it).
  if (info.some((c) => Number(c.hidden) === 1)) return undefined;
  const slot = new Map<string, number>();
  for (const c of info) if (Number(c.hidden) !== 2) slot.set(c.name, slot.size);
  const declared = new Map(info.map((c) => [c.name, c.type]));
  if (!columns.every((c) => declared.has(c))) return undefined;
  const real = columns.map((c) => realAffinity(declared.get(c)!));
  const rootOf = (type: string, name: string) => Number(db.prepare("select rootpage from sqlite_master where type = ? and name = ?").pluck().get(type, name) ?? 0);

  const { plan } = keyOrderPlan(db, table, columns);
  const covering = /USING COVERING INDEX (.+)$/.exec(plan);
  if (covering) {
    const index = covering[1];
    const xinfo = db.prepare("select seqno, cid, name from pragma_index_xinfo(?) order by seqno").all(index) as { seqno: bigint; cid: bigint; name: string | null }[];
    const at = columns.map((c) => Number(xinfo.find((x) => Number(x.cid) >= 0 && x.name === c)?.seqno ?? -1));
    const rowidAt = Number(xinfo.find((x) => Number(x.cid) === -1)?.seqno ?? -1);
    const root = rootOf("index", index);
    if (at.some((a) => a < 0) || rowidAt < 0 || root < 1) return undefined;
    return { root, index: true, at, rowidAt, real };
  }
  const root = rootOf("table", table);
  if (root < 1) return undefined;
  const pk = info.filter((c) => Number(c.pk) > 0);
  // An INTEGER PRIMARY KEY is the rowid (its record slot holds NULL); SQLite's own code for reading it says which.
  const alias = pk.length === 1 && (db.prepare(`explain select ${quoteSqlite(pk[0].name)} from ${quoteSqlite(table)} not indexed`).all() as { opcode: string }[]).some((o) => o.opcode === "Rowid") ? pk[0].name : undefined;
  if (!columns.every((c) => slot.has(c))) return undefined;
  const at = columns.map((c) => (c === alias ? -1 : slot.get(c)!));
  return { root, index: false, at, rowidAt: -1, real };
}

const TEXT = 0;
const INT8 = 1;
const INT4 = 2;
const INT2 = 3;
const FLOAT8 = 4;
const BOOL = 5;
const BYTEA = 6;
const OTHER = 7;
const CODES: Record<string, number> = { text: TEXT, "character varying": TEXT, json: TEXT, bigint: INT8, integer: INT4, smallint: INT2, "double precision": FLOAT8, boolean: BOOL, bytea: BYTEA };

/** A serial type holding an integer (1-6 bytes, or the constants 0/1). */
const isInt = (t: number) => (t >= 1 && t <= 6) || t === 8 || t === 9;

/** Rows read again through SQLite: the first and every SAMPLE_EVERY-th after it; of the rows stored on overflow pages
 * (a chain of pages to follow: a second code path), the first OVERFLOW_ALL and every OVERFLOW_EVERY-th after them. */
const SAMPLE_EVERY = 4096;
const OVERFLOW_ALL = 1024;
const OVERFLOW_EVERY = 64;

/** One table's rows from the file as binary COPY rows (no stream header or trailer) and their checksum. */
export class FileRows {
  readonly sum = new HashSum();
  rows = 0;
  /** Rows read again through SQLite and found equal. */
  checked = 0;
  /** Rows stored on overflow pages. */
  overflowed = 0;
  private readonly cursor: BtreeCursor;
  private readonly rec = new RecordHeader();
  private readonly bin: BinaryRows;
  private readonly codes: Uint8Array;
  private readonly kinds: number[];
  private readonly writers: BinaryWriter[];
  private readonly where: (() => string)[];
  private readonly defaults: (SqliteValue | undefined)[];
  private readonly out = new Int32Array(2);
  private readonly byRowid: Database.Statement;
  private done = false;

  constructor(
    private readonly file: SqliteFile,
    private readonly db: Database.Database,
    private readonly table: string,
    private readonly cols: PageColumn[],
    private readonly scan: FileScan,
  ) {
    this.cursor = new BtreeCursor(file, scan.root);
    this.codes = Uint8Array.from(cols, (c) => CODES[c.type] ?? OTHER);
    this.kinds = cols.map((c) => kindCode(c.kind));
    this.where = cols.map((c) => () => `${table}.${c.name}`);
    this.writers = cols.map((c, i) => {
      const w = binaryWriter(c.type, this.where[i]);
      if (!w) throw new Error(`${table}.${c.name}: no binary form for ${c.type}; read it through readRows`);
      return w;
    });
    this.defaults = cols.map(() => undefined);
    this.byRowid = db.prepare(`select ${cols.map((c) => quoteSqlite(c.name)).join(", ")} from ${quoteSqlite(table)} where rowid = ?`).raw(true);
    this.bin = new BinaryRows(this.writers, { header: false, recycle: true });
  }

  /** The next chunk of about 256 KiB of COPY rows (write it before asking for the next: its buffer is used again for
   * the one after); the last one may be smaller; undefined after it. */
  next(): Buffer | undefined {
    if (this.done) return undefined;
    const { cursor, bin } = this;
    while (cursor.next()) {
      this.row();
      if (this.rows % SAMPLE_EVERY === 1 || (cursor.overflowed && (++this.overflowed <= OVERFLOW_ALL || this.overflowed % OVERFLOW_EVERY === 0))) this.check();
      const chunk = bin.finish();
      if (chunk) return chunk;
    }
    this.done = true;
    const rest = bin.takeRows();
    return rest.length ? rest : undefined;
  }

  checksum(): Checksum {
    return { rows: this.rows, sum: this.sum.value().toString() };
  }

  /** Encodes and hashes the cursor's row. */
  private row() {
    const { cursor, rec, bin, codes, out, scan } = this;
    const { at, real } = scan;
    const buf = cursor.buf;
    rec.parse(buf, cursor.start, cursor.end, this.file.path);
    const n = codes.length;
    bin.begin(n);
    let hi = 0;
    let lo = 0;
    for (let i = 0; i < n; i++) {
      const a = at[i];
      if (a < 0 || a >= rec.count) this.generic(i, a < 0 ? this.rowid() : this.defaultValue(i));
      else {
        const t = rec.types[a];
        const off = rec.offs[a];
        if (t === 0) {
          bin.null();
          out[0] = out[1] = 0;
        } else
          switch (codes[i]) {
            case TEXT:
            case BYTEA:
              // A text value into a text column, a blob into bytea: its bytes (text's checked as UTF-8 in pre-flight).
              if (t >= 12 && (t & 1) === (codes[i] === TEXT ? 1 : 0)) {
                const len = rec.lens[a];
                bin.raw(buf, off, len);
                hashBytes(buf, len, out, off);
              } else this.generic(i, this.value(i, t, off, rec.lens[a]));
              break;
            case INT8:
              if (isInt(t) && !real[i]) {
                let h: number;
                let l: number;
                if (t === 6) {
                  h = buf.readInt32BE(off);
                  l = buf.readInt32BE(off + 4);
                } else if (t === 5) {
                  // 6 bytes (millisecond timestamps): the high half is the first two, sign-extended.
                  h = (buf[off] << 24) >> 16 | buf[off + 1];
                  l = buf.readInt32BE(off + 2);
                } else {
                  const v = serialInt(buf, off, t);
                  h = Math.floor(v / 4294967296);
                  l = (v - h * 4294967296) | 0;
                }
                bin.int64Words(h, l);
                hashInt8Words(h, l, out);
              } else this.generic(i, this.value(i, t, off, rec.lens[a]));
              break;
            case FLOAT8:
              // A NaN on disk reads as NULL in SQLite: value() decodes it so.
              if (t === 7 && (buf.readUInt16BE(off) & 0x7ff0) !== 0x7ff0) {
                bin.raw(buf, off, 8);
                hashBytes(buf, 8, out, off);
              } else if (isInt(t) && t !== 6) {
                const x = serialInt(buf, off, t);
                bin.float8(x);
                hashFloat8(x, out);
              } else this.generic(i, this.value(i, t, off, rec.lens[a]));
              break;
            case INT4:
            case INT2: {
              const v = isInt(t) && t !== 6 && !real[i] ? serialInt(buf, off, t) : NaN;
              if (codes[i] === INT4 ? v >= -2147483648 && v <= 2147483647 : v >= -32768 && v <= 32767) {
                if (codes[i] === INT4) bin.int32(v);
                else bin.int16(v);
                hashInt8Words(v < 0 ? -1 : 0, v, out);
              } else this.generic(i, this.value(i, t, off, rec.lens[a]));
              break;
            }
            case BOOL:
              if (isInt(t) && t !== 6) {
                const b = serialInt(buf, off, t) !== 0 ? 1 : 0;
                bin.byte(b);
                hashUint32(b, out);
              } else this.generic(i, this.value(i, t, off, rec.lens[a]));
              break;
            default:
              this.generic(i, this.value(i, t, off, rec.lens[a]));
          }
      }
      // hash_record_extended: result = result * 31 + element hash (mod 2^64), on the halves (record-hash.ts).
      const l = lo * 31 + (out[1] >>> 0);
      lo = l >>> 0;
      hi = (Math.imul(hi, 31) + out[0] + (l - lo) / 4294967296) | 0;
    }
    this.sum.add(hi, lo);
    this.rows++;
  }

  /** Writes and hashes column i's value the way readRows' values go (binary.ts, record-hash.ts). */
  private generic(i: number, v: SqliteValue) {
    if (v === null) {
      this.bin.null();
      this.out[0] = this.out[1] = 0;
      return;
    }
    this.writers[i](v, this.bin);
    hashValue(this.kinds[i], v, this.where[i], this.out);
  }

  /** Column i's value of serial type t at cursor.buf[off], as better-sqlite3 hands it over (safeIntegers). */
  private value(i: number, t: number, off: number, len: number): SqliteValue {
    const buf = this.cursor.buf;
    if (t === 0) return null;
    if (isInt(t)) return this.scan.real[i] ? Number(serialBigInt(buf, off, t)) : serialBigInt(buf, off, t);
    if (t === 7) {
      const x = buf.readDoubleBE(off);
      return x !== x ? null : x;
    }
    if (t >= 13 && (t & 1) === 1) return buf.toString("utf8", off, off + len);
    if (t >= 12) return Buffer.from(buf.subarray(off, off + len));
    throw new Error(`${this.file.path}: ${this.table}: serial type ${t} (reserved) in a record: database disk image is malformed`);
  }

  /** Column i of a row stored before the column was added (ALTER TABLE ADD COLUMN): its default, as SQLite reads it
   * (the same for every such row: ADD COLUMN takes constant defaults only). */
  private defaultValue(i: number): SqliteValue {
    if (this.defaults[i] === undefined) {
      const rowid = this.rowid();
      const row = this.byRowid.get(rowid) as SqliteValue[] | undefined;
      if (!row) throw new Error(`${this.table}: rowid ${rowid} read from the file is not in SQLite's snapshot`);
      this.defaults[i] = row[i];
    }
    return this.defaults[i]!;
  }

  /** The row's rowid: the cell's, or an index record's last column. */
  private rowid(): bigint {
    const { cursor, rec, scan } = this;
    if (!scan.index) return cursor.rowidBig ?? BigInt(cursor.rowid);
    const t = rec.types[scan.rowidAt];
    if (!isInt(t)) throw new Error(`${this.file.path}: ${this.table}: an index entry without a rowid: database disk image is malformed`);
    return serialBigInt(cursor.buf, rec.offs[scan.rowidAt], t);
  }

  /** Reads the cursor's row again through SQLite and throws if any value differs from what the file gave. */
  private check() {
    const { rec, scan } = this;
    const rowid = this.rowid();
    const ours = this.cols.map((_, i) => {
      const a = scan.at[i];
      if (a < 0) return rowid;
      if (a >= rec.count) return this.defaultValue(i);
      return this.value(i, rec.types[a], rec.offs[a], rec.lens[a]);
    });
    const theirs = this.byRowid.get(rowid) as SqliteValue[] | undefined;
    for (let i = 0; i < ours.length; i++) {
      if (!theirs || !same(ours[i], theirs[i])) {
        throw new Error(
          `reading ${this.table} from the file disagrees with SQLite at rowid ${rowid}` +
            (theirs ? `, column ${this.cols[i].name}: ${describe(ours[i])} against ${describe(theirs[i])}` : ": SQLite has no such row") +
            " — a bug in sqlite-file.ts: re-run with --sqlite-reader and report it; nothing was written",
        );
      }
    }
    this.checked++;
  }
}

function same(a: SqliteValue, b: SqliteValue): boolean {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  return typeof a === typeof b && Object.is(a, b);
}

