// The source reads of the migration: readRows (pages by primary key, copy.ts) and distinctValues (index skip-scan of
// the invalid-text pre-flight, text-check.ts), against real SQLite files: every row exactly once, in key order, and
// every distinct stored value, including bytes that are not valid UTF-8.
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { readRows } from "../scripts/lib/migrate/read-rows.ts";
import { RowEncoder } from "../scripts/lib/migrate/row-encoder.ts";
import { canonicalField, converterFor, type SqliteValue } from "../scripts/lib/migrate/convert.ts";
import { HashSum } from "../scripts/lib/migrate/rowhash.ts";
import { openSource } from "../scripts/lib/migrate/source.ts";
import { distinctValues, findBadText } from "../scripts/lib/migrate/text-check.ts";
import type { Catalog } from "../scripts/lib/migrate/target.ts";
import { makeTempDir } from "./support/tmp.ts";

const tmp = makeTempDir("migrate-read");
afterAll(() => tmp.cleanup());

function open(name: string, sql: string): Database.Database {
  const db = new Database(join(tmp.dir, name));
  db.exec(sql);
  db.defaultSafeIntegers(true);
  return db;
}

const all = (pages: Iterable<unknown[][]>) => [...pages].flat();

describe("readRows", () => {
  // Like MLflow's metrics: the primary key covers every column, so SQLite reads it in key order from the index.
  const db = open(
    "metrics.db",
    `create table m (k varchar(10) not null, s bigint not null, v float not null, primary key (k, s, v));
     with recursive c(i) as (select 0 union all select i + 1 from c where i < 1999)
     insert into m select 'key' || (i * 7 % 5), (i * 7919) % 401, i / 3.0 from c order by random();
     create table r (id integer primary key, name text);
     with recursive c(i) as (select 1 union all select i + 1 from c where i < 250) insert into r select i, 'n' || i from c order by random();
     create table nokey (a text, b integer);
     insert into nokey values ('x', 2), ('y', 1), ('x', 2);`,
  );
  const expected = (sql: string) => db.prepare(sql).raw(true).all() as unknown[][];

  it("reads a table with a covering primary key in key order, page by page, every row once", () => {
    const pages = [...readRows(db, "m", ["k", "s", "v"], { pageRows: 100 })];
    expect(pages.length).toBe(20); // 2000 rows: the last page is full, and the one after it empty ends the read
    expect(pages.every((p) => p.length === 100)).toBe(true);
    expect(all(pages)).toEqual(expected("select k, s, v from m order by k, s, v"));
  });

  it("reads in a column order other than the key's, with a last page shorter than the others", () => {
    const rows = all(readRows(db, "m", ["v", "k", "s"], { pageRows: 300 }));
    expect(rows).toEqual(expected("select v, k, s from m order by k, s, v"));
  });

  it("pages a rowid table by its integer primary key", () => {
    const pages = [...readRows(db, "r", ["id", "name"], { pageRows: 64 })];
    expect(pages.map((p) => p.length)).toEqual([64, 64, 64, 58]);
    expect(all(pages)).toEqual(expected("select id, name from r order by id"));
  });

  it("without paging, or without a key, reads the same rows in one pass (yielded in pages)", () => {
    expect(all(readRows(db, "m", ["k", "s", "v"], { paged: false, pageRows: 128 }))).toEqual(expected("select k, s, v from m order by k, s, v"));
    const rows = all(readRows(db, "nokey", ["a", "b"], { pageRows: 2 }));
    expect(rows.map((r) => r.join()).sort()).toEqual(["x,2", "x,2", "y,1"]);
  });

  it("in lanes: lane k of n reads pages k, k + n, ... and together the lanes read every row once, in key order by page", () => {
    const whole = [...readRows(db, "m", ["k", "s", "v"], { pageRows: 64 })];
    for (const lanes of [2, 3, 5]) {
      const byLane = Array.from({ length: lanes }, (_, lane) => [...readRows(db, "m", ["k", "s", "v"], { pageRows: 64, lane, lanes })]);
      const interleaved = whole.map((_, p) => byLane[p % lanes][Math.floor(p / lanes)]);
      expect(interleaved).toEqual(whole);
      expect(byLane.reduce((n, pages) => n + pages.length, 0)).toBe(whole.length);
    }
    expect(() => [...readRows(db, "nokey", ["a", "b"], { lane: 1, lanes: 2 })]).toThrow(/cannot be read in lanes/);
  });

  it("falls back to one pass when the key is not among the columns read (no free key order)", () => {
    const rows = all(readRows(db, "m", ["k", "v"], { pageRows: 7 }));
    expect(rows.length).toBe(2000);
    expect(rows.map((r) => r.join()).sort()).toEqual(expected("select k, v from m").map((r) => r.join()).sort());
  });
});

describe("distinctValues (skip-scan of an index)", () => {
  const db = open(
    "values.db",
    `create table t (id integer primary key, c);
     create index t_c on t (c);
     insert into t (c) values ('a'), ('a'), ('b'), (cast(x'ff61' as text)), (cast(x'620063' as text)), (x'00'), (x'00'), (null), (null), (3), (2.5), (3), ('b');`,
  );
  const truth = () => (db.prepare(`select distinct typeof(c), hex(c) from t where c is not null order by c`).raw(true).all() as [string, string][]).map(([t, h]) => `${t}:${h}`);
  const got = (limit?: number) => [...distinctValues(db, "t", "c", limit)].map(([t, b]) => `${t}:${b!.toString("hex").toUpperCase()}`);

  it("yields every distinct non-null value in index order, as stored (invalid UTF-8 and NUL bytes kept)", () => {
    expect(got()).toEqual(truth());
    expect(got()).toContain("text:FF61");
    expect(got()).toContain("blob:00");
    expect(got().length).toBe(7);
  });

  it("after `limit` seeks reads the rest by one scan, with the same result", () => {
    for (const limit of [0, 1, 3, 6]) expect(got(limit)).toEqual(truth());
  });

  it("finds bad text in an indexed (leading) column and in a scanned one, naming the rows", () => {
    const path = join(tmp.dir, "bad.db");
    const src = new Database(path);
    src.exec(`create table alembic_version (version_num varchar(32) not null primary key); insert into alembic_version values ('abc');
      create table experiments (experiment_id integer primary key); create table runs (run_uuid varchar(32) primary key);
      create table p (k varchar(250) not null, v varchar(500), run_uuid varchar(32) not null, primary key (k, run_uuid));
      insert into p values ('ok', 'fine', 'r1'), (cast(x'6bff' as text), 'fine', 'r2'), ('ok', cast(x'7600' as text), 'r3'), ('ok2', x'01', 'r4');`);
    src.close();
    const source = openSource(path);
    try {
      const catalog = { tables: new Map([["p", { name: "p", columns: ["k", "v", "run_uuid"].map((name) => ({ name, kind: "text" })) }]]) } as unknown as Catalog;
      const found = findBadText(source, catalog, ["p"]).map((b) => `${b.column} ${b.row} ${b.problem}`).sort();
      expect(found).toEqual(["k k=k\uFFFD, run_uuid=r2 invalid UTF-8", "v k=ok, run_uuid=r3 NUL byte", "v k=ok2, run_uuid=r4 BLOB"]);
    } finally {
      source.close();
    }
  });
});

describe("the canonical form of a double (checksum side of every float read)", () => {
  it("is its 8 big-endian bytes in hex, as PostgreSQL's encode(float8send(x), 'hex'), NaN as PostgreSQL's NaN", () => {
    const canonical = converterFor("float8", () => "t.c").canonical;
    for (const x of [0, -0, 1, -1.5, 0.1, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, Infinity, -Infinity, 123456.789e-7]) {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(x, 0);
      expect(canonical(x)).toBe(b.toString("hex"));
    }
    expect(canonical(NaN)).toBe("7ff8000000000000");
    expect(canonical(-0)).toBe("8000000000000000");
  });
});

describe("the row checksum written in place (RowEncoder.hash, rowhash.ts CanonicalRow)", () => {
  it("hashes the same bytes as the canonical row string, for ASCII, non-ASCII, lone surrogates, NULLs, NaN, -0, bigints", () => {
    const cols = [
      { name: "t", kind: "text" as const },
      { name: "f", kind: "float8" as const },
      { name: "i", kind: "int" as const },
      { name: "b", kind: "bool" as const },
      { name: "x", kind: "bytea" as const },
      { name: "r", kind: "float4" as const },
    ];
    const rows: SqliteValue[][] = [
      ["bench_metric_0", 0.1, 1700000000000n, 1n, Buffer.from([0, 255]), 1.5],
      ["é€😀 mixed", -0, -9223372036854775808n, 0n, null, NaN],
      ["lone \ud800 surrogate", NaN, 0n, 1n, "as text", -1],
      [null, null, null, null, null, null],
      ["", 1.7976931348623157e308, 42, "true", Buffer.alloc(0), 3],
      ["x".repeat(5000) + "é", -Infinity, 7n, 0, Buffer.alloc(3000, 7), 0.25],
    ];
    const enc = new RowEncoder("t", cols, "lookup3");
    const expected = new HashSum();
    const convs = cols.map((c) => converterFor(c.kind, () => c.name));
    for (const row of rows) {
      enc.hash(row);
      expected.addText(row.map((v, i) => (v === null ? "-" : canonicalField(convs[i].canonical(v)))).join(""));
    }
    expect(enc.rows).toBe(rows.length);
    expect(enc.sum.value()).toBe(expected.value());
  });
});
