// Verification on the PostgreSQL side: row count and the order-independent checksum of the canonical values, computed
// by PostgreSQL from what it STORED (floats by their 8 bytes), compared with the checksum of the source values.
import type pg from "pg";
import { canonicalRowSql } from "./convert.ts";
import type { Checksum } from "./copy.ts";
import type { TargetColumn, TargetTable } from "./target.ts";

export async function targetChecksum(client: pg.Client, table: TargetTable, cols: TargetColumn[]): Promise<Checksum> {
  const row = canonicalRowSql(cols);
  const r = await client.query<{ rows: string; sum: string }>(
    `select count(*)::text as rows, coalesce(sum(('x' || left(md5(${row}), 16))::bit(64)::bigint::numeric), 0)::text as sum
       from ${table.qualified}`,
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
