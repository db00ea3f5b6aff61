// Verification on the PostgreSQL side: row count and the order-independent checksum of the canonical values, computed
// by PostgreSQL from what it STORED (floats by their 8 bytes), compared with the checksum of the source values.
import type pg from "pg";
import { canonicalRowSql } from "./convert.ts";
import type { Checksum, RowHash } from "./row-encoder.ts";
import { hashBytes } from "./rowhash.ts";
import type { TargetColumn, TargetTable } from "./target.ts";

export async function targetChecksum(client: pg.Client, table: TargetTable, cols: TargetColumn[], rowHash: RowHash = "lookup3"): Promise<Checksum> {
  const row = canonicalRowSql(cols);
  const hash = rowHash === "md5" ? `('x' || left(md5(${row}), 16))::bit(64)::bigint` : `hashtextextended(${row}, 0)`;
  const r = await client.query<{ rows: string; sum: string }>(
    `select count(*)::text as rows, coalesce(sum(${hash}), 0)::text as sum from ${table.qualified}`,
  );
  return { rows: Number(r.rows[0].rows), sum: r.rows[0].sum };
}

export interface VerifiedTable {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceChecksum: string;
  targetChecksum: string;
  ok: boolean;
}

export function compare(table: string, source: Checksum, target: Checksum): VerifiedTable {
  return {
    table,
    sourceRows: source.rows,
    targetRows: target.rows,
    sourceChecksum: source.sum,
    targetChecksum: target.sum,
    ok: source.rows === target.rows && source.sum === target.sum,
  };
}

/**
 * lookup3 when the server's hashtextextended gives what rowhash.ts computes (a little-endian server), else md5
 * (slower, the same everywhere).
 */
export async function chooseRowHash(client: pg.Client): Promise<RowHash> {
  const probe = "mlflow-stack probe: é€😀 0123456789 \t\\";
  const r = await client.query<{ h: string }>("select hashtextextended($1, 0)::text as h", [probe]);
  const bytes = Buffer.from(probe, "utf8");
  const out = new Int32Array(2);
  hashBytes(bytes, bytes.length, out);
  return (BigInt(out[0]) * 4294967296n + BigInt(out[1] >>> 0)).toString() === r.rows[0].h ? "lookup3" : "md5";
}
