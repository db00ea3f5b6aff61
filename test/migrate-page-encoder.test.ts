// PageEncoder (page-encoder.ts): the COPY bytes of a table are the same whether one reader batches its pages into
// ~256 KiB chunks or lanes hand out one buffer per page, in binary and in text format, and so is the checksum.
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BINARY_HEADER, BINARY_TRAILER, BinaryRows } from "../scripts/lib/migrate/binary.ts";
import type { SqliteValue } from "../scripts/lib/migrate/convert.ts";
import { binaryWriters, PageEncoder, type PageColumn } from "../scripts/lib/migrate/page-encoder.ts";
import { readRows } from "../scripts/lib/migrate/read-rows.ts";
import { RowEncoder } from "../scripts/lib/migrate/row-encoder.ts";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { makeTempDir } from "./support/tmp.ts";

const tmp = makeTempDir("page-encoder");
afterAll(() => tmp.cleanup());

const db = new Database(join(tmp.dir, "m.db"));
db.exec(`create table m (k text not null, ts integer not null, v real, run text not null, primary key (k, ts, run));
  with recursive c(i) as (select 0 union all select i + 1 from c where i < 4999)
  insert into m select 'metric_' || (i % 7) || (case when i % 11 = 0 then 'é' else '' end), 1700000000000 + i, case when i % 13 = 0 then null else i * 0.5 end,
                       printf('%032x', i % 17) from c;`);
db.defaultSafeIntegers(true);
const cols: PageColumn[] = [
  { name: "k", kind: "text", type: "character varying" },
  { name: "ts", kind: "int", type: "bigint" },
  { name: "v", kind: "float8", type: "double precision" },
  { name: "run", kind: "text", type: "character varying" },
];
const pages = () => readRows(db, "m", cols.map((c) => c.name), { pageRows: 300 });

function stream(binary: boolean, batch: boolean) {
  const enc = new PageEncoder("m", cols, "record", binary, { batch });
  const parts: Buffer[] = [];
  let perPage = 0;
  for (const page of pages()) {
    const out = enc.encode(page);
    if (!batch) expect(out.length).toBe(1); // lanes: exactly one buffer per page
    if (!batch) expect(out[0].byteOffset === 0 && out[0].byteLength === out[0].buffer.byteLength).toBe(true); // transferable
    perPage += out.length;
    parts.push(...out);
  }
  const rest = enc.rest();
  if (rest) parts.push(rest);
  return { bytes: Buffer.concat(parts), checksum: enc.checksum(), writes: parts.length, perPage };
}

describe("PageEncoder", () => {
  it("binary: batched and per-page give the same bytes and checksum, as BinaryRows over every row does", () => {
    const batched = stream(true, true);
    const paged = stream(true, false);
    expect(batched.bytes.equals(paged.bytes)).toBe(true);
    expect(batched.checksum).toEqual(paged.checksum);
    expect(batched.checksum.rows).toBe(5000);
    expect(paged.perPage).toBe(17); // 5000 rows in pages of 300
    expect(batched.writes).toBeLessThan(paged.writes); // fewer, larger writes
    const whole = new BinaryRows(binaryWriters("m", cols)!, { header: false });
    const chunks: Buffer[] = [];
    const enc = new RowEncoder("m", cols, "record");
    for (const page of pages()) for (const row of page as SqliteValue[][]) {
      enc.hash(row);
      const c = whole.add(row);
      if (c) chunks.push(c);
    }
    chunks.push(whole.takeRows());
    expect(Buffer.concat(chunks).equals(batched.bytes)).toBe(true);
    expect(enc.sum.value().toString()).toBe(batched.checksum.sum);
    // With the header and trailer copy.ts adds, the stream PostgreSQL reads.
    const full = Buffer.concat([BINARY_HEADER, batched.bytes, BINARY_TRAILER]);
    expect(full.subarray(0, 11).toString("latin1")).toBe("PGCOPY\n\xff\r\n\0");
    expect(full.readInt16BE(full.length - 2)).toBe(-1);
  });

  it("text: batched and per-page give the same lines and checksum", () => {
    const batched = stream(false, true);
    const paged = stream(false, false);
    expect(batched.bytes.equals(paged.bytes)).toBe(true);
    expect(batched.checksum).toEqual(paged.checksum);
    const lines = batched.bytes.toString("utf8").split("\n");
    expect(lines.length).toBe(5001); // 5000 lines and the empty string after the last newline
    expect(lines[0].split("\t").length).toBe(4);
    expect(lines.filter((l) => l.includes("\\N")).length).toBe(Math.ceil(5000 / 13));
  });
});
