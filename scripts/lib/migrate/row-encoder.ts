// One table's rows as COPY text lines and as the verification checksum (verify.ts compares it with PostgreSQL's own):
// the same code in the copying thread and in copy worker threads.
import { createHash } from "node:crypto";
import { canonicalField, converterFor, type Converter, type Kind, type SqliteValue } from "./convert.ts";
import { CanonicalRow, HashSum } from "./rowhash.ts";

/** How a canonical row is hashed: PostgreSQL's hashtextextended(row, 0) (see rowhash.ts) or the first 8 bytes of md5. */
export type RowHash = "lookup3" | "md5";

export interface Checksum {
  rows: number;
  /** Sum of the signed 64-bit row hashes, as decimal text. */
  sum: string;
}

/** Turns source rows into COPY text lines and adds each row's hash to the checksum (the same code in every thread). */
export class RowEncoder {
  private readonly convs: Converter[];
  private readonly fields: string[];
  private readonly md5: boolean;
  private readonly float8: boolean[];
  private readonly canon = new CanonicalRow();
  readonly sum = new HashSum();
  rows = 0;

  constructor(table: string, columns: { name: string; kind: Kind }[], rowHash: RowHash) {
    this.convs = columns.map((c) => converterFor(c.kind, () => `${table}.${c.name}`));
    this.fields = new Array(columns.length);
    this.md5 = rowHash === "md5";
    this.float8 = columns.map((c) => c.kind === "float8");
  }

  /** The row's COPY line (with its newline); adds the row's hash to the checksum. */
  line(row: SqliteValue[]): string {
    const { convs, fields } = this;
    let canon = "";
    for (let i = 0; i < convs.length; i++) {
      const v = row[i];
      if (v === null) {
        fields[i] = "\\N";
        canon += "-";
      } else {
        fields[i] = convs[i].copy(v);
        canon += canonicalField(convs[i].canonical(v));
      }
    }
    this.addCanonical(canon);
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
    this.rows++;
    return out + "\n";
  }

  /** Adds the row's hash to the checksum only (no COPY line). */
  hash(row: SqliteValue[]) {
    const { convs } = this;
    if (!this.md5) {
      // The same canonical bytes as below, written in place (rowhash.ts: CanonicalRow).
      const c = this.canon;
      c.pos = 0;
      for (let i = 0; i < convs.length; i++) {
        const v = row[i];
        if (v === null) c.null();
        else if (this.float8[i] && typeof v === "number") c.float8(v);
        else c.text(convs[i].canonical(v));
      }
      this.sum.addBytes(c.buf, c.pos);
      this.rows++;
      return;
    }
    let canon = "";
    for (let i = 0; i < convs.length; i++) {
      const v = row[i];
      canon += v === null ? "-" : canonicalField(convs[i].canonical(v));
    }
    this.addCanonical(canon);
  }

  private addCanonical(canon: string) {
    if (this.md5) this.sum.addBigInt(createHash("md5").update(canon, "utf8").digest().readBigInt64BE(0));
    else this.sum.addText(canon);
    this.rows++;
  }
}
