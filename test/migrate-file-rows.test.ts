// The copy's fast path (sqlite-file.ts, file-rows.ts): a table read straight from the SQLite file gives the same COPY
// bytes and checksum as the same table read through better-sqlite3 (readRows + PageEncoder), for every kind of value
// SQLite stores, page sizes from 512 to 65536 bytes, overflow chains in tables and indexes, rows older than an
// ALTER TABLE ADD COLUMN, rowid aliases; it declines what it does not read; it notices a file that disagrees with SQLite.
import { copyFileSync, openSync, readFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileRows, fileScan } from "../scripts/lib/migrate/file-rows.ts";
import { PageEncoder, type PageColumn } from "../scripts/lib/migrate/page-encoder.ts";
import { readRows } from "../scripts/lib/migrate/read-rows.ts";
import { BtreeCursor, CorruptFile, SqliteFile } from "../scripts/lib/migrate/sqlite-file.ts";
import { sqliteFailure } from "../scripts/lib/migrate/source.ts";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { makeTempDir } from "./support/tmp.ts";

const tmp = makeTempDir("file-rows");
afterAll(() => tmp.cleanup());
let dbs = 0;

/** A fresh database file with `sql` run in it (page size first), opened again read-only as migrate opens it. */
function database(sql: string, pageSize = 4096): { path: string; db: Database.Database } {
  const path = join(tmp.dir, `t${dbs++}.db`);
  const w = new Database(path);
  w.pragma(`page_size = ${pageSize}`);
  w.exec(sql);
  w.close();
  const db = new Database(path, { readonly: true });
  db.defaultSafeIntegers(true);
  db.exec("begin");
  return { path, db };
}

function viaSqlite(db: Database.Database, table: string, cols: PageColumn[]) {
  const enc = new PageEncoder(table, cols, "record", true, { batch: true });
  const parts: Buffer[] = [];
  for (const page of readRows(db, table, cols.map((c) => c.name))) parts.push(...enc.encode(page));
  const rest = enc.rest();
  if (rest) parts.push(rest);
  return { bytes: Buffer.concat(parts), checksum: enc.checksum() };
}

function viaFile(path: string, db: Database.Database, table: string, cols: PageColumn[]) {
  const scan = fileScan(db, path, table, cols.map((c) => c.name));
  if (!scan) throw new Error(`fileScan declined ${table}`);
  const file = new SqliteFile(path);
  try {
    const rows = new FileRows(file, db, table, cols, scan);
    const parts: Buffer[] = [];
    for (let c = rows.next(); c; c = rows.next()) parts.push(Buffer.from(c)); // "written" before the next (recycled buffers)
    return { bytes: Buffer.concat(parts), checksum: rows.checksum(), checked: rows.checked, overflowed: rows.overflowed, scan };
  } finally {
    file.close();
  }
}

const col = (name: string, type: string, kind: PageColumn["kind"]): PageColumn => ({ name, type, kind });

describe("reading a table straight from the SQLite file", () => {
  it("gives readRows' bytes and checksum for every serial type, at every page size", () => {
    // Integers of every width and sign (serial types 1-6, 8, 9), floats (a whole one in a REAL column is stored as an
    // integer), -0, NULLs, non-ASCII text, blobs, values of the "wrong" storage class for their column.
    const sql = `create table v (id integer primary key, i bigint, s integer, b boolean, f float, t text, x blob, other text);
      with recursive c(n) as (select 0 union all select n + 1 from c where n < 2999)
      insert into v (i, s, b, f, t, x, other)
      select case n % 9 when 0 then 0 when 1 then 1 when 2 then -100 when 3 then 30000 when 4 then -8000000
               when 5 then 2000000000 when 6 then -140000000000000 when 7 then 9007199254740993 * (1 - 2 * (n % 2))
               else null end,
             (n % 200) - 100, n % 2,
             case n % 7 when 0 then n * 1.0 when 1 then -0.0 when 2 then null when 3 then 1e300 when 4 then -2.5e-308
               when 5 then n + 0.125 else 123456789012.0 * (1 - 2 * (n % 2)) end,
             case n % 5 when 0 then 'metric_' || n when 1 then 'é€😀 ' || n when 2 then '' when 3 then null
               else printf('%.*c', n % 300, 'a') end,
             case n % 3 when 0 then randomblob(n % 40) when 1 then x'' else null end,
             case n % 4 when 0 then n - 140000000000000 when 1 then n * 0.5 when 2 then 'text ' || n else x'00ff' end
      from c;`;
    const cols = [
      col("id", "bigint", "int"),
      col("i", "bigint", "int"),
      col("s", "smallint", "int"),
      col("b", "boolean", "bool"),
      col("f", "double precision", "float8"),
      col("t", "text", "text"),
      col("x", "bytea", "bytea"),
      col("other", "bytea", "bytea"),
    ];
    for (const pageSize of [512, 1024, 4096, 65536]) {
      const { path, db } = database(sql, pageSize);
      const ours = viaFile(path, db, "v", cols);
      const theirs = viaSqlite(db, "v", cols);
      expect(ours.checksum, `page size ${pageSize}`).toEqual(theirs.checksum);
      expect(ours.bytes.equals(theirs.bytes), `page size ${pageSize}`).toBe(true);
      expect(ours.checksum.rows).toBe(3000);
      expect(ours.scan.at[0]).toBe(-1); // id is the rowid
      expect(ours.checked).toBeGreaterThanOrEqual(1);
      db.close();
    }
  });

  it("follows overflow chains, in a table and in the covering index it reads in key order", () => {
    const { path, db } = database(
      `create table p (run_uuid text not null, key text not null, value text, primary key (run_uuid, key));
       create table tags (run_uuid text not null, key text not null, primary key (run_uuid, key));
       with recursive c(n) as (select 0 union all select n + 1 from c where n < 599)
       insert into p select printf('%032x', n % 13), printf('%.*c', 10 + (n * 37) % 3000, 'k') || n,
                            printf('%.*c', (n * 131) % 20000, 'v') || 'é' from c;
       insert into tags select run_uuid, key from p;
       -- every payload size up to 4 pages: each split between page and overflow chain, the edge cases included
       with recursive c(n) as (select 0 union all select n + 1 from c where n < 4099)
       insert into tags select 'len', printf('%04d', n) || printf('%.*c', n, 'x') from c;
       with recursive c(n) as (select 0 union all select n + 1 from c where n < 4099)
       insert into p select 'len', 'k' || n, printf('%.*c', n, 'y') from c;`,
      1024,
    );
    const cols = [col("run_uuid", "character varying", "text"), col("key", "character varying", "text"), col("value", "text", "text")];
    const table = viaFile(path, db, "p", cols);
    expect(table.scan.index).toBe(false); // value is not in the key's index: the table, in rowid order
    const theirs = viaSqlite(db, "p", cols);
    expect(table.checksum).toEqual(theirs.checksum);
    expect(table.bytes.equals(theirs.bytes)).toBe(true);
    expect(table.overflowed).toBeGreaterThan(3000);
    expect(table.checked).toBeGreaterThanOrEqual(1024 + Math.floor((table.overflowed - 1024) / 64)); // overflowed rows: the first 1024, then every 64th
    const keyCols = cols.slice(0, 2);
    const index = viaFile(path, db, "tags", keyCols);
    expect(index.scan.index).toBe(true); // keys of up to 3000 bytes overflow in the index too
    const indexTheirs = viaSqlite(db, "tags", keyCols);
    expect(index.checksum).toEqual(indexTheirs.checksum);
    expect(index.bytes.equals(indexTheirs.bytes)).toBe(true);
    expect(index.checked).toBeGreaterThanOrEqual(1024);
  });

  it("reads MLflow's metrics by their 6-column key as readRows does", () => {
    const { path, db } = database(`create table metrics (key varchar(250) not null, value float not null, timestamp bigint not null,
        run_uuid varchar(32) not null, step bigint default '0' not null, is_nan boolean default '0' not null,
        constraint metric_pk primary key (key, timestamp, step, run_uuid, value, is_nan));
      with recursive c(n) as (select 0 union all select n + 1 from c where n < 9999)
      insert into metrics select 'loss_' || (n % 5), (n % 97) * 0.25, 1700000000000 + n, printf('%032x', n % 10), n / 10, 0 from c;`);
    const cols = [col("key", "character varying", "text"), col("value", "double precision", "float8"), col("timestamp", "bigint", "int"), col("run_uuid", "character varying", "text"), col("step", "bigint", "int"), col("is_nan", "boolean", "bool")];
    const ours = viaFile(path, db, "metrics", cols);
    expect(ours.scan.index).toBe(true);
    expect(ours.scan.at).toEqual([0, 4, 1, 3, 2, 5]); // key, timestamp, step, run_uuid, value, is_nan
    const theirs = viaSqlite(db, "metrics", cols);
    expect(ours.checksum).toEqual(theirs.checksum);
    expect(ours.bytes.equals(theirs.bytes)).toBe(true);
  });

  it("gives rows stored before an ALTER TABLE ADD COLUMN the column's default, as SQLite does", () => {
    const { path, db } = database(`create table m (k text, v float);
      insert into m values ('a', 1.5), ('b', 2);
      alter table m add column step bigint default '0' not null;
      alter table m add column is_nan boolean default 1;
      alter table m add column note text;
      insert into m values ('c', 3, 7, 0, 'x');`);
    const cols = [col("k", "text", "text"), col("v", "double precision", "float8"), col("step", "bigint", "int"), col("is_nan", "boolean", "bool"), col("note", "text", "text")];
    const ours = viaFile(path, db, "m", cols);
    const theirs = viaSqlite(db, "m", cols);
    expect(ours.checksum).toEqual(theirs.checksum);
    expect(ours.bytes.equals(theirs.bytes)).toBe(true);
    expect(ours.checksum.rows).toBe(3);
  });

  it("reads rowids beyond 2^53 and negative ones", () => {
    const { path, db } = database(`create table r (id integer primary key, v text);
      insert into r values (-9223372036854775808, 'min'), (-1, 'neg'), (9007199254740993, 'big'), (9223372036854775807, 'max');`);
    const cols = [col("id", "bigint", "int"), col("v", "text", "text")];
    const ours = viaFile(path, db, "r", cols);
    expect(ours.checksum).toEqual(viaSqlite(db, "r", cols).checksum);
    expect(ours.bytes.equals(viaSqlite(db, "r", cols).bytes)).toBe(true);
  });

  it("reads around generated columns (a STORED one has a slot in the record, a VIRTUAL one none), as MLflow's spans", () => {
    const { path, db } = database(`create table spans (a int, v int generated always as (a * 2) virtual, b text,
        s int generated always as (a + 1) stored, c float);
      with recursive c(n) as (select 0 union all select n + 1 from c where n < 99) insert into spans (a, b, c) select n, 'b' || n, n / 3.0 from c;`);
    const cols = [col("a", "integer", "int"), col("b", "text", "text"), col("c", "double precision", "float8")];
    const ours = viaFile(path, db, "spans", cols);
    expect(ours.scan.at).toEqual([0, 1, 3]);
    expect(ours.checksum).toEqual(viaSqlite(db, "spans", cols).checksum);
    expect(ours.bytes.equals(viaSqlite(db, "spans", cols).bytes)).toBe(true);
    expect(fileScan(db, path, "spans", ["a", "v"])).toBeUndefined(); // migrate never reads generated columns
  });

  it("declines what it does not read: WITHOUT ROWID tables, a WAL file holding frames", () => {
    const { path, db } = database(`create table w (k text primary key, v int) without rowid; insert into w values ('a', 1);
      create table plain (a int); insert into plain values (1);`);
    expect(fileScan(db, path, "w", ["k", "v"])).toBeUndefined();
    expect(fileScan(db, path, "plain", ["a"])).toBeDefined();
    db.close();
    const writer = new Database(path);
    writer.pragma("journal_mode = wal");
    writer.pragma("wal_autocheckpoint = 0");
    writer.exec("insert into plain values (2)"); // lives only in the -wal file until a checkpoint
    const reader = new Database(path, { readonly: true });
    reader.exec("begin");
    expect(fileScan(reader, path, "plain", ["a"])).toBeUndefined();
    reader.close();
    writer.close(); // checkpoints and removes the -wal file
    const after = new Database(path, { readonly: true });
    expect(fileScan(after, path, "plain", ["a"])).toBeDefined();
    after.close();
  });

  it("stops with SQLite's word for it when a page is not what SQLite wrote", () => {
    const { path, db } = database(`create table t (a text); with recursive c(n) as (select 0 union all select n + 1 from c where n < 999)
      insert into t select printf('%.*c', 50, 'z') from c;`, 1024);
    const scan = fileScan(db, path, "t", ["a"])!;
    const bad = join(tmp.dir, "bad.db");
    copyFileSync(path, bad);
    const fd = openSync(bad, "r+");
    writeSync(fd, Buffer.from([0x42]), 0, 1, (scan.root - 1) * 1024); // the root page's type byte
    closeSync(fd);
    const file = new SqliteFile(bad);
    expect(() => new BtreeCursor(file, scan.root)).toThrow(CorruptFile);
    let error: unknown;
    try {
      new BtreeCursor(file, scan.root);
    } catch (e) {
      error = e;
    }
    expect(sqliteFailure(bad, error)?.message).toMatch(/is a corrupt SQLite database/);
    file.close();
  });

  it("notices a value the file gives differently from SQLite (the sampled rows are read again through SQLite)", () => {
    const { path, db } = database(`create table t (id integer primary key, a text);
      with recursive c(n) as (select 1 union all select n + 1 from c where n < 5000)
      insert into t select n, 'value-' || printf('%06d', n) from c;`);
    const scan = fileScan(db, path, "t", ["id", "a"])!;
    // A copy of the file with the 4097th row's value changed in place, read against the original's SQLite snapshot.
    const other = join(tmp.dir, "other.db");
    const bytes = readFileSync(path);
    const at = bytes.indexOf("value-004097");
    expect(at).toBeGreaterThan(0);
    bytes.write("VALUE", at, "latin1");
    const fd = openSync(other, "w");
    writeSync(fd, bytes);
    closeSync(fd);
    const file = new SqliteFile(other);
    const rows = new FileRows(file, db, "t", [col("id", "bigint", "int"), col("a", "text", "text")], scan);
    expect(() => {
      while (rows.next());
    }).toThrow(/disagrees with SQLite at rowid 4097, column a: "VALUE-004097" against "value-004097"/);
    file.close();
  });
});
