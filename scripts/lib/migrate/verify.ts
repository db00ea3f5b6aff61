// Verification on the PostgreSQL side: row count and the order-independent checksum (sum of the signed 64-bit row
// hashes), computed by PostgreSQL from what it STORED (floats by their 8 bytes), compared with the checksum of the
// source values (row-encoder.ts).
import type pg from "pg";
import { canonicalRowSql, type Kind } from "./convert.ts";
import { RecordHasher, recordRowSql } from "./record-hash.ts";
import type { Checksum, RowHash } from "./row-encoder.ts";
import type { TargetColumn, TargetTable } from "./target.ts";

export async function targetChecksum(client: pg.Client, table: TargetTable, cols: TargetColumn[], rowHash: RowHash = "record"): Promise<Checksum> {
  const hash = rowHash === "md5" ? `('x' || left(md5(${canonicalRowSql(cols)}), 16))::bit(64)::bigint` : recordRowSql(cols);
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
  /** How the source rows were read (Checksum.reader). */
  reader?: "file" | "sqlite";
}

export function compare(table: string, source: Checksum, target: Checksum): VerifiedTable {
  return {
    table,
    sourceRows: source.rows,
    targetRows: target.rows,
    sourceChecksum: source.sum,
    targetChecksum: target.sum,
    ok: source.rows === target.rows && source.sum === target.sum,
    ...(source.reader ? { reader: source.reader } : {}),
  };
}

// One row of every kind the record hash treats differently, non-ASCII text and a text longer than one lookup3 block.
const PROBE: { name: string; type: string; kind: Kind; value: string | Buffer | number | bigint | boolean }[] = [
  { name: "t", type: "text", kind: "text", value: "mlflow-stack probe: é€😀 0123456789 \t\\" },
  { name: "a", type: "text", kind: "text", value: "run_uuid" },
  { name: "x", type: "bytea", kind: "bytea", value: Buffer.from([0, 1, 0xfe, 0xff, 0x80, 7, 7, 7, 7, 7, 7, 7, 7, 42]) },
  { name: "i", type: "bigint", kind: "int", value: -1234567890123456789n },
  { name: "f", type: "double precision", kind: "float8", value: -1.5e-300 },
  { name: "r", type: "real", kind: "float4", value: 0.1 },
  { name: "b", type: "boolean", kind: "bool", value: true },
];

/**
 * "record" when the server has hash_record_extended (PostgreSQL 14+) and it gives what record-hash.ts computes for a
 * probe row (a little-endian server), else md5 (slower, the same everywhere). Runs inside the migration's transaction:
 * asks for the version first instead of letting an unknown function abort it.
 */
export async function chooseRowHash(client: pg.Client): Promise<RowHash> {
  const v = await client.query<{ v: string }>("select current_setting('server_version_num') as v");
  if (Number(v.rows[0].v) < 140000) return "md5";
  const cols = PROBE.map((p) => ({ quoted: p.name, kind: p.kind }));
  const values = PROBE.map((p, i) => `$${i + 1}::${p.type}`).join(", ");
  const r = await client.query<{ h: string }>(
    `select ${recordRowSql(cols)}::text as h from (values (${values})) as p(${PROBE.map((p) => p.name).join(", ")})`,
    PROBE.map((p) => (typeof p.value === "number" || typeof p.value === "bigint" ? String(p.value) : p.value)),
  );
  const hasher = new RecordHasher("probe", PROBE);
  hasher.hash(PROBE.map((p) => (typeof p.value === "boolean" ? (p.value ? 1n : 0n) : p.value)));
  return ((BigInt(hasher.hi) << 32n) + BigInt(hasher.lo)).toString() === r.rows[0].h ? "record" : "md5";
}
