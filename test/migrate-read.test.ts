// The source reads of the migration: readRows (pages by primary key, copy.ts) and distinctValues (index skip-scan of
// the invalid-text pre-flight, text-check.ts), against real SQLite files: every row exactly once, in key order, and
// every distinct stored value, including bytes that are not valid UTF-8.
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { readRows } from "../scripts/lib/migrate/read-rows.ts";
import { RowEncoder } from "../scripts/lib/migrate/row-encoder.ts";
import { converterFor, toText, type Kind, type SqliteValue } from "../scripts/lib/migrate/convert.ts";
import { RecordHasher } from "../scripts/lib/migrate/record-hash.ts";
import { hashBytes, toBigInt } from "../scripts/lib/migrate/rowhash.ts";
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

describe("the record row hash's fast paths (record-hash.ts, rowhash.ts) against hash_bytes_extended of explicit bytes", () => {
  // Reference: every column as the bytes PostgreSQL hashes (hashfunc.c: an int is hash_uint32_extended of its folded
  // low half = hash_bytes_extended of 4 little-endian bytes; floats their float8send/float4send bytes), combined in
  // BigInt as rowtypes.c hash_record_extended does.
  const out = new Int32Array(2);
  const bytesHash = (b: Buffer) => {
    hashBytes(b, b.length, out);
    return toBigInt(out);
  };
  const M = (1n << 64n) - 1n;
  function reference(kinds: Kind[], row: SqliteValue[]): bigint {
    let r = 0n;
    row.forEach((v, i) => {
      let h = 0n;
      if (v !== null) {
        const b = Buffer.alloc(8);
        switch (kinds[i]) {
          case "text":
            h = bytesHash(Buffer.from(toText(v), "utf8"));
            break;
          case "bytea":
            h = bytesHash(Buffer.isBuffer(v) ? v : Buffer.from(toText(v), "utf8"));
            break;
          case "int": {
            const n = BigInt.asIntN(64, typeof v === "bigint" ? v : BigInt(String(v).trim()));
            const lo = Number(BigInt.asUintN(32, n));
            const hi = Number(BigInt.asUintN(32, n >> 32n));
            b.writeUInt32LE((lo ^ (n >= 0n ? hi : ~hi)) >>> 0, 0);
            h = bytesHash(b.subarray(0, 4));
            break;
          }
          case "bool":
            b.writeUInt32LE(v === 1n || v === 1 || v === "true" ? 1 : 0, 0);
            h = bytesHash(b.subarray(0, 4));
            break;
          case "float8":
            if (Number.isNaN(v)) b.writeUInt32BE(0x7ff80000, 0);
            else b.writeDoubleBE(Number(v), 0);
            h = bytesHash(b);
            break;
          case "float4":
            if (Number.isNaN(v)) b.writeUInt32BE(0x7fc00000, 0);
            else b.writeFloatBE(Number(v), 0);
            h = bytesHash(b.subarray(0, 4));
            break;
        }
      }
      r = (r * 31n + BigInt.asUintN(64, h)) & M;
    });
    return BigInt.asIntN(64, r);
  }

  it("ASCII text of every length up to 40 and a non-ASCII character at every position", () => {
    const kinds: Kind[] = ["text"];
    const h = new RecordHasher("t", [{ name: "t", kind: "text" }]);
    const texts: string[] = [];
    for (let n = 0; n <= 40; n++) {
      const ascii = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 31) % 95))).join("");
      texts.push(ascii, ascii + "\x7f");
      for (let p = 0; p < n; p++) for (const c of ["é", "€", "😀", "\u0100", "\ud800"]) texts.push(ascii.slice(0, p) + c + ascii.slice(p + 1));
    }
    for (const t of texts) {
      h.hash([t]);
      expect((BigInt(h.hi) << 32n) + BigInt(h.lo), JSON.stringify(t)).toBe(reference(kinds, [t]));
    }
  });

  it("rows of every kind, NULLs, edge numbers, and the sum RowEncoder keeps", () => {
    const cols = [
      { name: "t", kind: "text" as const },
      { name: "f", kind: "float8" as const },
      { name: "i", kind: "int" as const },
      { name: "b", kind: "bool" as const },
      { name: "x", kind: "bytea" as const },
      { name: "r", kind: "float4" as const },
    ];
    const kinds = cols.map((c) => c.kind);
    const rows: SqliteValue[][] = [
      ["bench_metric_0", 0.1, 1700000000000n, 1n, Buffer.from([0, 255]), 1.5],
      ["é€😀 mixed", -0, -9223372036854775808n, 0n, null, NaN],
      ["lone \ud800 surrogate", NaN, 0n, 1n, "as text", -1],
      [null, null, null, null, null, null],
      ["", 1.7976931348623157e308, 9223372036854775807n, "true", Buffer.alloc(0), 3],
      ["x".repeat(5000) + "é", -Infinity, -1n, 0, Buffer.alloc(3000, 7), 0.25],
      [42n, 5e-324, 2147483648n, 1, Buffer.alloc(12, 1), -0],
      ["", 0, -2147483649n, 0n, Buffer.alloc(13, 2), Infinity],
    ];
    const enc = new RowEncoder("t", cols, "record");
    let expected = 0n;
    for (const row of rows) {
      enc.hash(row);
      expected += reference(kinds, row);
    }
    expect(enc.rows).toBe(rows.length);
    expect(enc.sum.value()).toBe(expected);
  });
});
