// The "record" row hash of the migration's checksum (scripts/lib/migrate/record-hash.ts) against a real PostgreSQL:
// RecordHasher computes from the source values exactly what hash_record_extended(row(...), 0) gives for what COPY
// stored, for the edge values of every kind; -0, +0 and NULL stay apart; swapping or changing any single column changes
// the hash on both sides; the md5 fallback still agrees (it used to hash a NULL boolean as 'f' on the server side).
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { converterFor, type SqliteValue } from "../scripts/lib/migrate/convert.ts";
import { RecordHasher, recordRowSql } from "../scripts/lib/migrate/record-hash.ts";
import { RowEncoder, type RowHash } from "../scripts/lib/migrate/row-encoder.ts";
import { readCatalog, type TargetColumn, type TargetTable } from "../scripts/lib/migrate/target.ts";
import { chooseRowHash, targetChecksum } from "../scripts/lib/migrate/verify.ts";
import { initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";

// Column order of the test table (after its `id`), every kind the converters know, two of some for the swap tests.
const COLUMNS = [
  ["t", "text"],
  ["v", "character varying(200)"],
  ["n", "numeric"],
  ["i2", "smallint"],
  ["i4", "integer"],
  ["i8", "bigint"],
  ["j8", "bigint"],
  ["f8", "double precision"],
  ["f4", "real"],
  ["b", "boolean"],
  ["x", "bytea"],
] as const;
type Col = (typeof COLUMNS)[number][0];
const index = (c: Col) => COLUMNS.findIndex(([n]) => n === c);

// Source values as better-sqlite3 returns them (INTEGER as bigint, REAL number, TEXT string, BLOB Buffer, NULL).
const EDGES: Record<Col, SqliteValue[]> = {
  t: ["", "a", "abcdefghijk", "abcdefghijkl", "abcdefghijklm", "é", "€", "😀", "é€😀", "abcdefghijké", "abcdefghijk€", "x".repeat(5000) + "é", "tab\tand\\back\nslash", "lone \ud800 surrogate", "nul\0byte", 42n, -1.5, Buffer.from("from a blob")],
  v: ["", "run-uuid-0123456789abcdef01234567", "ü€😀".repeat(50)],
  n: ["1.50", "-0.000001", "123456789012345678901234567890"],
  i2: [0n, -1n, 1n, 32767n, -32768n, 3, "-7"],
  i4: [0n, -1n, 2147483647n, -2147483648n],
  i8: [0n, -1n, 1n, 2n ** 31n, -(2n ** 31n) - 1n, 2n ** 32n, 2n ** 63n - 1n, -(2n ** 63n) + 1n, -(2n ** 63n), 1700000000000n, 12.0, " 12 "],
  j8: [0n, 5n],
  f8: [0, -0, NaN, Infinity, -Infinity, 5e-324, -5e-324, 1.7976931348623157e308, 0.1, -1.5e-300, 1, 3n, "2.5"],
  f4: [0, -0, NaN, Infinity, -Infinity, 0.1, 1e-45, 3.4028234663852886e38, -2.5],
  b: [1n, 0n, 1, "true", "f"],
  x: [Buffer.alloc(0), Buffer.from([0]), Buffer.alloc(11, 0xff), Buffer.alloc(12, 0x80), Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) & 255)), "as text é"],
};

/** One row per edge value (the other columns NULL), an all-NULL row and a few full rows. */
function edgeRows(): SqliteValue[][] {
  const rows: SqliteValue[][] = [COLUMNS.map(() => null)];
  for (const [c] of COLUMNS) {
    for (const v of EDGES[c]) {
      const row: SqliteValue[] = COLUMNS.map(() => null);
      row[index(c)] = v;
      rows.push(row);
    }
  }
  for (let k = 0; k < 5; k++) rows.push(COLUMNS.map(([c]) => EDGES[c][(k * 7 + 3) % EDGES[c].length]));
  return rows;
}

describe.skipIf(!initdbPath)("the record row hash (hash_record_extended) against PostgreSQL", () => {
  let server: TestPostgres;
  let client: pg.Client;
  let table: TargetTable;
  let cols: TargetColumn[];
  const rows = edgeRows();
  const jsHashes: bigint[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    await client.query(`create table h (id int primary key, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`);
    table = (await readCatalog(client)).tables.get("h")!;
    cols = table.columns.filter((c) => c.name !== "id");
    // Loaded as the migration loads it: RowEncoder's COPY text lines.
    const enc = new RowEncoder("h", [{ name: "id", kind: "int" }, ...cols], "md5");
    const lines = rows.map((r, i) => enc.line([BigInt(i), ...r]));
    await pipeline(Readable.from(lines), client.query(copyFrom(`copy h from stdin`)));
    const hasher = new RecordHasher("h", cols);
    for (const r of rows) {
      hasher.hash(r);
      jsHashes.push((BigInt(hasher.hi) << 32n) + BigInt(hasher.lo));
    }
  }, 60_000);
  afterAll(async () => {
    await client?.end();
    await server?.stop();
  });

  const pgHashes = async () =>
    (await client.query<{ h: string }>(`select ${recordRowSql(cols)}::text as h from h order by id`)).rows.map((r) => BigInt(r.h));

  it("the kinds are the ones the converters know (the table covers every one)", () => {
    expect(new Set(cols.map((c) => c.kind))).toEqual(new Set(["text", "int", "float8", "float4", "bool", "bytea"]));
  });

  it("is PostgreSQL's hash of the stored row, for every edge value of every kind and NULL", async () => {
    const ours = jsHashes.map((h, i) => `${i} ${JSON.stringify(rows[i], (_, v) => (typeof v === "bigint" ? `${v}n` : v))} ${h}`);
    const theirs = (await pgHashes()).map((h, i) => `${i} ${JSON.stringify(rows[i], (_, v) => (typeof v === "bigint" ? `${v}n` : v))} ${h}`);
    expect(ours).toEqual(theirs);
    expect(await chooseRowHash(client)).toBe("record");
  });

  it("keeps +0, -0 and NULL apart (float8send, not hashfloat8extended) and NaN apart from them", () => {
    for (const c of ["f8", "f4"] as const) {
      const rowOf = (v: SqliteValue) => rows.findIndex((r) => r.every((x, i) => (i === index(c) ? Object.is(x, v) : x === null)));
      const hashes = [0, -0, NaN, null].map((v) => jsHashes[rowOf(v)]);
      expect(new Set(hashes).size, c).toBe(4);
    }
  });

  it("every non-NULL edge value hashes apart from NULL and from the other values of its column", () => {
    const nul = jsHashes[0];
    for (const [c] of COLUMNS) {
      const own = rows.map((r, i) => [r, jsHashes[i]] as const).filter(([r]) => r.every((x, i) => (i === index(c) ? x !== null : x === null)));
      expect(own.length, c).toBe(EDGES[c].length);
      for (const [, h] of own) expect(h, c).not.toBe(nul);
    }
  });

  it("a column swap changes the row hash (text and text, bigint and bigint), on both sides", async () => {
    const hasher = new RecordHasher("h", cols);
    const hashOf = (set: Partial<Record<Col, SqliteValue>>) => {
      hasher.hash(COLUMNS.map(([c]) => set[c] ?? null));
      return (BigInt(hasher.hi) << 32n) + BigInt(hasher.lo);
    };
    expect(hashOf({ t: "abc", v: "xyz" })).not.toBe(hashOf({ t: "xyz", v: "abc" }));
    expect(hashOf({ i8: 1n, j8: 2n })).not.toBe(hashOf({ i8: 2n, j8: 1n }));
    expect(hashOf({ i8: 1n })).not.toBe(hashOf({ j8: 1n }));
    const r = await client.query<{ a: string; b: string }>(
      `select ${recordRowSql(cols)}::text as a, ${recordRowSql(cols.map((c) => (c.name === "t" ? { ...c, quoted: "v" } : c.name === "v" ? { ...c, quoted: "t" } : c)))}::text as b from h where t is not null and v is not null limit 1`,
    );
    expect(r.rows[0].a).not.toBe(r.rows[0].b);
  });

  it("changing any single column of a full row changes its hash and the table's checksum: no column is dropped", async () => {
    const full = rows.length - 1;
    const before = await targetChecksum(client, table, cols, "record");
    const hasher = new RecordHasher("h", cols);
    for (const c of cols) {
      const i = cols.indexOf(c);
      // Another stored value of the column's own type (by its COPY text), and NULL.
      const copy = converterFor(c.kind, () => c.name).copy;
      const other = EDGES[c.name as Col].find((v) => copy(v!) !== copy(rows[full][i]!))!;
      for (const v of [other, null]) {
        const changed = rows[full].slice();
        changed[i] = v;
        hasher.hash(changed);
        expect((BigInt(hasher.hi) << 32n) + BigInt(hasher.lo), `${c.name} = ${String(v)}`).not.toBe(jsHashes[full]);
      }
      await client.query("begin");
      await client.query(`update h set ${c.quoted} = null where id = ${full}`);
      const after = await targetChecksum(client, table, cols, "record");
      await client.query("rollback");
      expect(after.rows).toBe(before.rows);
      expect(after.sum, c.name).not.toBe(before.sum);
    }
  });

  it("the table's checksum is the sum of the source rows' hashes, for both row hashes", async () => {
    for (const rowHash of ["record", "md5"] as RowHash[]) {
      const enc = new RowEncoder("h", cols, rowHash);
      for (const r of rows) enc.hash(r);
      expect(await targetChecksum(client, table, cols, rowHash), rowHash).toEqual({ rows: rows.length, sum: enc.sum.value().toString() });
    }
    const sum = jsHashes.reduce((a, b) => a + b, 0n);
    expect((await targetChecksum(client, table, cols)).sum).toBe(sum.toString());
  });

  it("line() and hash() add the same row hash", () => {
    const a = new RowEncoder("h", cols, "record");
    const b = new RowEncoder("h", cols, "record");
    for (const r of rows) {
      a.line(r);
      b.hash(r);
    }
    expect(a.rows).toBe(rows.length);
    expect(a.sum.value()).toBe(b.sum.value());
  });
});
