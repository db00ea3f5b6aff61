// One table's rows as COPY text lines and as the verification checksum (verify.ts compares it with PostgreSQL's own):
// the same code in the copying thread and in lane worker threads (page-encoder.ts).
import { createHash } from "node:crypto";
import { canonicalField, converterFor, type Converter, type Kind, type SqliteValue } from "./convert.ts";
import { RecordHasher } from "./record-hash.ts";
import { HashSum } from "./rowhash.ts";

/**
 * How a row is hashed: "record" is PostgreSQL's hash_record_extended over the typed columns (record-hash.ts; PostgreSQL
 * 14+ on a little-endian server), "md5" the first 8 bytes of md5 of the canonical row text (convert.ts
 * canonicalRowSql; slower, the same on every server).
 */
export type RowHash = "record" | "md5";

export interface Checksum {
  rows: number;
  /** Sum of the signed 64-bit row hashes, as decimal text. */
  sum: string;
  /** How the source rows were read: straight from the file (file-rows.ts) or through better-sqlite3 (readRows). */
  reader?: "file" | "sqlite";
}

/** Turns source rows into COPY text lines and adds each row's hash to the checksum (the same code in every thread). */
export class RowEncoder {
  private readonly convs: Converter[];
  private readonly fields: string[];
  private readonly record: RecordHasher | undefined;
  readonly sum = new HashSum();
  /** Rows hashed. */
  rows = 0;

  constructor(table: string, columns: { name: string; kind: Kind }[], rowHash: RowHash) {
    this.convs = columns.map((c) => converterFor(c.kind, () => `${table}.${c.name}`));
    this.fields = new Array(columns.length);
    this.record = rowHash === "record" ? new RecordHasher(table, columns) : undefined;
  }

  /** The row's COPY line (with its newline); adds the row's hash to the checksum. */
  line(row: SqliteValue[]): string {
    const { convs, fields } = this;
    for (let i = 0; i < convs.length; i++) {
      const v = row[i];
      fields[i] = v === null ? "\\N" : convs[i].copy(v);
    }
    this.hash(row);
    return fields.join("\t") + "\n";
  }

  /** The row's COPY line only (the checksum is computed elsewhere: see `hash`). */
  copyLine(row: SqliteValue[]): string {
    const { convs } = this;
    let out = "";
    for (let i = 0; i < convs.length; i++) {
      const v = row[i];
      if (i > 0) out += "\t";
      out += v === null ? "\\N" : convs[i].copy(v);
    }
    return out + "\n";
  }

  /** Adds the row's hash to the checksum only (no COPY line). */
  hash(row: SqliteValue[]) {
    const { record } = this;
    if (record) {
      record.hash(row);
      this.sum.add(record.hi, record.lo);
    } else {
      const { convs } = this;
      let canon = "";
      for (let i = 0; i < convs.length; i++) {
        const v = row[i];
        canon += v === null ? "-" : canonicalField(convs[i].canonical(v));
      }
      this.sum.addBigInt(createHash("md5").update(canon, "utf8").digest().readBigInt64BE(0));
    }
    this.rows++;
  }
}
