// Value conversion SQLite -> PostgreSQL, by the TARGET column's type, in two independent forms:
//  - `copyText`: the value in PostgreSQL's COPY text format (what we load);
//  - `canonical`: a type-exact text form that PostgreSQL can compute from the STORED value on its side
//    (see `canonicalSql`), so comparing checksums of both proves the load lost nothing (floats by their 8 bytes).
//    Only the md5 row hash hashes these texts; the default "record" row hash (record-hash.ts) hashes typed values and
//    uses `canonicalSql` for the columns sent as text.
// SQLite values arrive from better-sqlite3 with `safeIntegers`: INTEGER as bigint (exact beyond 2^53), REAL as
// number, TEXT as string, BLOB as Buffer, NULL as null.
import { UserError } from "../cli.ts";

export type SqliteValue = bigint | number | string | Buffer | null;

/** The families of PostgreSQL types we convert to; anything else goes through as text. */
export type Kind = "bool" | "int" | "float8" | "float4" | "bytea" | "text";

export function kindOf(pgType: string): Kind {
  switch (pgType) {
    case "boolean":
      return "bool";
    case "smallint":
    case "integer":
    case "bigint":
      return "int";
    case "double precision":
      return "float8";
    case "real":
      return "float4";
    case "bytea":
      return "bytea";
    default:
      return "text"; // character varying, text, json, jsonb, numeric, ... (PostgreSQL parses the text)
  }
}

export class ConversionError extends UserError {}

export function toNumber(value: SqliteValue, where: () => string): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) return Number(value);
  throw new ConversionError(`${where()}: expected a number, found ${describe(value)}`);
}

export function toBool(value: SqliteValue, where: () => string): boolean {
  if (typeof value === "bigint") return value !== 0n;
  if (typeof value === "number") return value !== 0;
  if (typeof value === "string") {
    const v = value.trim().toLowerCase();
    if (["1", "t", "true"].includes(v)) return true;
    if (["0", "f", "false"].includes(v)) return false;
  }
  throw new ConversionError(`${where()}: expected a boolean (0/1), found ${describe(value)}`);
}

export function toIntText(value: SqliteValue, where: () => string): string {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value).toString();
  if (typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value)) return BigInt(value.trim()).toString();
  throw new ConversionError(`${where()}: expected an integer, found ${describe(value)}`);
}

/** A text value as PostgreSQL stores it. Invalid UTF-8 already arrives as U+FFFD (better-sqlite3 decodes with V8) and
 * a NUL becomes U+FFFD here: both only get this far with --replace-invalid-text (text-check.ts refuses them otherwise). */
export function toText(value: SqliteValue): string {
  const s = typeof value === "string" ? value : Buffer.isBuffer(value) ? value.toString("utf8") : String(value); // numbers: their SQLite text form
  return s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s;
}

/** A value as error messages show it (a blob by its size, text quoted, at most 40 characters). */
export function describe(value: SqliteValue): string {
  if (Buffer.isBuffer(value)) return `a blob of ${value.length} bytes`;
  const s = typeof value === "string" ? JSON.stringify(value) : String(value);
  return s.length > 40 ? s.slice(0, 40) + "…" : s;
}

/** Shortest text that parses back to exactly the same double (JS gives it; -0 and NaN/inf spelled for PostgreSQL). */
export function floatText(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}

const scratch = Buffer.alloc(8);
// float8Hex runs once per float of every row: byte-to-hex by table is 2.5x cheaper than Buffer#toString("hex")
// (measured: 87 vs 214 ms per million doubles). Float64Array is in the machine's byte order: little-endian checked here.
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** The canonical form of a double: its 8 bytes big-endian in hex, NaN as PostgreSQL's. */
export function float8Hex(x: number): string {
  if (Number.isNaN(x)) return "7ff8000000000000"; // PostgreSQL's canonical NaN
  if (LITTLE_ENDIAN) {
    f64[0] = x;
    const b = f64Bytes;
    return HEX[b[7]] + HEX[b[6]] + HEX[b[5]] + HEX[b[4]] + HEX[b[3]] + HEX[b[2]] + HEX[b[1]] + HEX[b[0]];
  }
  scratch.writeDoubleBE(x, 0);
  return scratch.toString("hex");
}
function float4Hex(x: number): string {
  if (Number.isNaN(x)) return "7fc00000";
  scratch.writeFloatBE(x, 0);
  return scratch.toString("hex", 0, 4);
}

/** COPY text escaping of a text value. */
export function escapeCopy(s: string): string {
  // Fast path: most values need no escaping.
  if (!/[\\\n\r\t]/.test(s)) return s;
  return s.replace(/[\\\n\r\t]/g, (c) => (c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "\\t"));
}

/** A converter for one column: the COPY field and the canonical field (both for a non-null value). */
export interface Converter {
  copy(value: SqliteValue): string;
  canonical(value: SqliteValue): string;
}

export function converterFor(kind: Kind, where: () => string): Converter {
  switch (kind) {
    case "bool":
      return {
        copy: (v) => (toBool(v, where) ? "t" : "f"),
        canonical: (v) => (toBool(v, where) ? "t" : "f"),
      };
    case "int":
      return { copy: (v) => toIntText(v, where), canonical: (v) => toIntText(v, where) };
    case "float8":
      return { copy: (v) => floatText(toNumber(v, where)), canonical: (v) => float8Hex(toNumber(v, where)) };
    case "float4":
      return { copy: (v) => floatText(Math.fround(toNumber(v, where))), canonical: (v) => float4Hex(toNumber(v, where)) };
    case "bytea":
      return {
        copy: (v) => "\\\\x" + (Buffer.isBuffer(v) ? v : Buffer.from(toText(v), "utf8")).toString("hex"),
        canonical: (v) => (Buffer.isBuffer(v) ? v : Buffer.from(toText(v), "utf8")).toString("hex"),
      };
    case "text":
      return { copy: (v) => escapeCopy(toText(v)), canonical: (v) => toText(v) };
  }
}

/** SQL expression computing the canonical text of column `col` (quoted identifier) of `kind` on the PostgreSQL side. */
export function canonicalSql(col: string, kind: Kind): string {
  switch (kind) {
    case "bool":
      return `case when ${col} then 't' when not ${col} then 'f' end`; // NULL stays NULL ("-")
    case "int":
      return `${col}::text`;
    case "float8":
      return `encode(float8send(${col}), 'hex')`;
    case "float4":
      return `encode(float4send(${col}), 'hex')`;
    case "bytea":
      return `encode(${col}, 'hex')`;
    case "text":
      return `${col}::text`;
  }
}

/**
 * The canonical row text: per column `<utf8 byte length>:<value>` or `-` for NULL, concatenated — unambiguous
 * without escaping. PostgreSQL side: `canonicalRowSql`; JS side: `canonicalField` per column.
 */
export function canonicalRowSql(cols: { quoted: string; kind: Kind }[]): string {
  if (cols.length === 0) return `''`;
  return cols
    .map(({ quoted, kind }) => {
      const v = canonicalSql(quoted, kind);
      return `coalesce(octet_length(${v})::text || ':' || ${v}, '-')`;
    })
    .join(" || ");
}

export function canonicalField(text: string | null): string {
  return text === null ? "-" : `${Buffer.byteLength(text, "utf8")}:${text}`;
}
