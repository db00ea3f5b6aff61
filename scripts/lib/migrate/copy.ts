// Copies one table: streams the SQLite rows through COPY ... FROM STDIN (text format) and, from the same source
// values, computes the order-independent checksum that verify.ts compares with PostgreSQL's own.
import type Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { once } from "node:events";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { canonicalField, converterFor, type SqliteValue } from "./convert.ts";
import { HashSum } from "./rowhash.ts";
import { quoteSqlite, sqliteFailure } from "./source.ts";
import type { TargetTable } from "./target.ts";

/** How a canonical row is hashed: PostgreSQL's hashtextextended(row, 0) (see rowhash.ts) or the first 8 bytes of md5. */
export type RowHash = "lookup3" | "md5";

export interface Checksum {
  rows: number;
  /** Sum of the signed 64-bit row hashes, as decimal text. */
  sum: string;
}

export interface CopyProgress {
  table: string;
  done: number;
  total: number;
}

const CHUNK = 256 * 1024;

/** Columns of `table` that both sides have, in the target's order (generated ones excluded). */
export function sharedColumns(table: TargetTable, sourceColumns: string[]) {
  const have = new Set(sourceColumns);
  return table.columns.filter((c) => !c.generated && have.has(c.name));
}

export async function copyTable(opts: {
  client: pg.Client;
  db: Database.Database;
  sourcePath: string;
  table: TargetTable;
  sourceColumns: string[];
  total: number;
  freeze: boolean;
  rowHash: RowHash;
  onProgress?: (p: CopyProgress) => void;
}): Promise<Checksum> {
  const { client, db, table, total, onProgress } = opts;
  const cols = sharedColumns(table, opts.sourceColumns);
  const convs = cols.map((c) => converterFor(c.kind, () => `${table.name}.${c.name}`));
  const n = cols.length;
  const sum = new HashSum();
  const md5 = opts.rowHash === "md5";
  let rows = 0;
  if (n === 0 || total === 0) return { rows: 0, sum: "0" };
  const select = `select ${cols.map((c) => quoteSqlite(c.name)).join(", ")} from ${quoteSqlite(table.name)}`;
  const stmt = db.prepare(select).raw(true);
  const copySql = `copy ${table.qualified} (${cols.map((c) => c.quoted).join(", ")}) from stdin${opts.freeze ? " with (freeze)" : ""}`;
  const stream = client.query(copyFrom(copySql));
  const finished = new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
  finished.catch(() => {}); // observed below
  let failed: unknown;
  stream.on("error", (e) => (failed ??= e));
  let buf = "";
  const fields: string[] = new Array(n);
  try {
    for (const row of stmt.iterate() as IterableIterator<SqliteValue[]>) {
      let canon = "";
      for (let i = 0; i < n; i++) {
        const v = row[i];
        if (v === null) {
          fields[i] = "\\N";
          canon += "-";
        } else {
          fields[i] = convs[i].copy(v);
          canon += canonicalField(convs[i].canonical(v));
        }
      }
      buf += fields.join("\t") + "\n";
      if (md5) sum.addBigInt(createHash("md5").update(canon, "utf8").digest().readBigInt64BE(0));
      else sum.addText(canon);
      rows++;
      if (buf.length >= CHUNK) {
        if (failed) throw failed;
        const ok = stream.write(buf);
        buf = "";
        if (!ok) await Promise.race([once(stream, "drain"), finished]);
        if ((rows & 0x3fff) === 0) onProgress?.({ table: table.name, done: rows, total });
      }
    }
  } catch (error) {
    stream.destroy();
    await finished.catch(() => {});
    throw sqliteFailure(opts.sourcePath, error) ?? error;
  }
  if (buf) stream.write(buf);
  stream.end();
  await finished;
  onProgress?.({ table: table.name, done: rows, total });
  return { rows, sum: sum.value().toString() };
}
