// The row hash of the verification checksum ("record"): PostgreSQL 14+'s
//   hash_record_extended(row(<e1>, <e2>, ...), 0)
// (src/backend/utils/adt/rowtypes.c): per column the extended hash function of the column's type, 0 for NULL, combined
// as result = (result << 5) - result + element_hash in uint64. PostgreSQL computes it from what it STORED (recordRowSql,
// verify.ts), RecordHasher from the source values as they are read. Measured on metrics rows: about 3x cheaper on the
// server than hashtextextended over a canonical row text, about 2x on the copying thread (no text to build). The
// per-column expressions lose nothing:
//  - bool: the column. Hash opclass bool_ops = hashcharextended -> hash_uint32_extended(0 or 1).
//  - smallint/integer/bigint: the column. hashint2/4extended hash the int32 value, hashint8extended folds the high half
//    into the low one first; equal for every value the narrower types hold (hashfunc.c), so one JS path for all three.
//  - double precision / real: float8send(col) / float4send(col), the exact big-endian bytes as bytea. The types' own
//    hashfloat8extended would hash -0 like +0 and return the seed (0, the same as NULL) for both zeros.
//  - bytea: the column (hashvarlenaextended: hash_bytes_extended of its bytes).
//  - text and everything sent as text: canonicalSql (col::text; for text/varchar the column itself) in collation "C",
//    so hashtextextended hashes the bytes even under a nondeterministic column collation.
// The JS hashes are the little-endian server's (rowhash.ts); chooseRowHash (verify.ts) checks the server agrees.
import { canonicalSql, toBool, toIntText, toNumber, toText, type Kind, type SqliteValue } from "./convert.ts";
import { hashBytes, hashFloat4, hashFloat8, hashInt8, hashString, hashUint32 } from "./rowhash.ts";

/** The SQL expression hashed for a column (quoted identifier) of `kind`. */
export function recordColumnSql(col: string, kind: Kind): string {
  switch (kind) {
    case "bool":
    case "int":
    case "bytea":
      return col;
    case "float8":
      return `float8send(${col})`;
    case "float4":
      return `float4send(${col})`;
    case "text":
      return `(${canonicalSql(col, kind)}) collate "C"`;
  }
}

/** The row hash as PostgreSQL computes it, a signed bigint. */
export function recordRowSql(cols: { quoted: string; kind: Kind }[]): string {
  return `hash_record_extended(row(${cols.map((c) => recordColumnSql(c.quoted, c.kind)).join(", ")}), 0)`;
}

const BOOL = 0;
const INT = 1;
const FLOAT8 = 2;
const FLOAT4 = 3;
const BYTEA = 4;
const TEXT = 5;
const CODES: Record<Kind, number> = { bool: BOOL, int: INT, float8: FLOAT8, float4: FLOAT4, bytea: BYTEA, text: TEXT };

/** The record hash's element hash of the non-null value `v` of a column of `kind` (code: kindCode), into out. */
export function hashValue(kind: number, v: Exclude<SqliteValue, null>, where: () => string, out: Int32Array) {
  switch (kind) {
    case TEXT:
      return hashString(toText(v), out);
    case INT:
      return hashInt8(typeof v === "bigint" ? v : BigInt(toIntText(v, where)), out);
    case FLOAT8:
      return hashFloat8(typeof v === "number" ? v : toNumber(v, where), out);
    case BOOL:
      return hashUint32(toBool(v, where) ? 1 : 0, out);
    case FLOAT4:
      return hashFloat4(toNumber(v, where), out);
    case BYTEA: {
      const b = Buffer.isBuffer(v) ? v : Buffer.from(toText(v), "utf8");
      return hashBytes(b, b.length, out);
    }
  }
}

/** The code hashValue takes for `kind`. */
export function kindCode(kind: Kind): number {
  return CODES[kind];
}

/**
 * hash_record_extended of a source row, converted as convert.ts converts it for COPY (a bool from 0/1, an int from a
 * REAL or TEXT holding one, text from a number, bytea from text, ... with the same errors). After `hash(row)` the row
 * hash is in `hi` (high 32 bits, signed) and `lo` (low 32 bits, unsigned).
 */
export class RecordHasher {
  hi = 0;
  lo = 0;
  private readonly kinds: Uint8Array;
  private readonly where: (() => string)[];
  private readonly out = new Int32Array(2);

  constructor(table: string, columns: { name: string; kind: Kind }[]) {
    this.kinds = Uint8Array.from(columns, (c) => CODES[c.kind]);
    this.where = columns.map((c) => () => `${table}.${c.name}`);
  }

  hash(row: SqliteValue[]) {
    const { kinds, out } = this;
    let hi = 0;
    let lo = 0;
    for (let i = 0; i < kinds.length; i++) {
      const v = row[i];
      if (v === null) {
        out[0] = 0;
        out[1] = 0;
      } else hashValue(kinds[i], v, this.where[i], out);
      // result = result * 31 + element_hash (mod 2^64) on the two halves: lo * 31 + element lo stays below 2^38, exact.
      const l = lo * 31 + (out[1] >>> 0);
      lo = l >>> 0;
      hi = (Math.imul(hi, 31) + out[0] + (l - lo) / 4294967296) | 0;
    }
    this.hi = hi;
    this.lo = lo;
  }
}
