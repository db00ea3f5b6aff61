// Text the target cannot hold as it is: invalid UTF-8 (SQLite stores whatever bytes it was given; reading it would
// turn them into U+FFFD silently), NUL bytes (PostgreSQL text cannot hold them) and BLOBs in a text column.
// Found before anything is written; the migration refuses them, or (--replace-invalid-text) replaces them with U+FFFD
// (convert.ts: toText) and lists every replaced value.
import { isUtf8 } from "node:buffer";
import type { Source } from "./source.ts";
import { quoteSqlite } from "./source.ts";
import type { Catalog } from "./target.ts";

export interface BadText {
  table: string;
  column: string;
  /** The row's primary key (or rowid), e.g. `run_uuid=ab12…`. */
  row: string;
  problem: "invalid UTF-8" | "NUL byte" | "BLOB";
  /** The value with the bad bytes shown as \xNN (at most 80 characters). */
  value: string;
}

function show(buf: Buffer): string {
  let out = "";
  for (const b of buf.subarray(0, 80)) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  return buf.length > 80 ? out + "…" : out;
}

/** Every value of a text column of `tables` (target kind text) that is not valid UTF-8, holds a NUL or is a BLOB. */
export function findBadText(source: Source, catalog: Catalog, tables: string[]): BadText[] {
  const found: BadText[] = [];
  for (const name of tables) {
    const target = catalog.tables.get(name);
    const src = source.tables.get(name);
    if (!target || !src) continue;
    const cols = target.columns.filter((c) => c.kind === "text" && src.columns.includes(c.name)).map((c) => c.name);
    if (cols.length === 0 || src.rows === 0) continue;
    const pk = (source.db.prepare(`select name from pragma_table_info(?) where pk > 0 order by pk`).all(name) as { name: string }[]).map((r) => r.name);
    const keyCols = pk.length ? pk : ["rowid"];
    const keySql = keyCols.map((k) => (k === "rowid" ? "rowid" : quoteSqlite(k))).join(", ");
    const rowName = (r: unknown[]) => keyCols.map((k, i) => `${k}=${Buffer.isBuffer(r[i]) ? show(r[i] as Buffer) : String(r[i])}`).join(", ");
    // Only values with a BLOB, a NUL (length() of text stops there) or a byte outside ASCII are read and checked here.
    const suspect = (c: string) => `typeof(${c}) = 'blob' or length(cast(${c} as blob)) <> length(${c}) or ${c} glob '*[^' || char(1) || '-' || char(127) || ']*'`;
    const problemOf = (type: string, buf: Buffer | null) =>
      buf === null || type === "null" ? undefined : type === "blob" ? "BLOB" : buf.includes(0) ? "NUL byte" : !isUtf8(buf) ? "invalid UTF-8" : undefined;
    // A column that leads an index (metrics.key, *.run_uuid) is checked by its distinct values, read from the index by
    // skip-scan (distinctValues): a few seeks instead of reading every row; the rows holding a bad value are then
    // looked up.
    const leading = new Set(
      (source.db.prepare(`select name from pragma_index_list(?)`).all(name) as { name: string }[])
        .map((i) => (source.db.prepare(`select name from pragma_index_info(?) where seqno = 0`).pluck().get(i.name) as string | null) ?? "")
        .filter((c) => c !== ""),
    );
    for (const column of cols.filter((c) => leading.has(c))) {
      const c = quoteSqlite(column);
      for (const [type, buf] of distinctValues(source.db, name, column)) {
        const problem = problemOf(type, buf);
        if (!problem) continue;
        for (const r of source.db.prepare(`select ${keySql} from ${quoteSqlite(name)} where typeof(${c}) = ? and cast(${c} as blob) = ?`).raw(true).all(type, buf) as unknown[][]) {
          found.push({ table: name, column, row: rowName(r), problem, value: show(buf!) });
        }
      }
    }
    const scanned = cols.filter((c) => !leading.has(c));
    if (scanned.length === 0) continue;
    const sql = `select ${keySql}, ${scanned.map((c) => `typeof(${quoteSqlite(c)}), cast(${quoteSqlite(c)} as blob)`).join(", ")} from ${quoteSqlite(name)} where ${scanned.map((c) => suspect(quoteSqlite(c))).join(" or ")}`;
    for (const r of source.db.prepare(sql).raw(true).all() as unknown[][]) {
      scanned.forEach((column, i) => {
        const buf = r[keyCols.length + 2 * i + 1] as Buffer | null;
        const problem = problemOf(r[keyCols.length + 2 * i] as string, buf);
        if (problem) found.push({ table: name, column, row: rowName(r), problem, value: show(buf!) });
      });
    }
  }
  return found;
}

/** After this many seeks distinctValues reads the rest of the index in one scan (a column of mostly unique values). */
export const SKIP_SCAN_LIMIT = 10_000;

/**
 * The distinct non-null values of `column` of `table` as [typeof, bytes], in index order, for a column that leads an
 * index: by skip-scan, one `where column > previous order by column limit 1` seek per value (SQLite answers it from the index), so
 * 5 keys among 5M metrics cost 5 seeks instead of a pass over the index. The previous value is bound as bytes (cast to
 * text for a text value): a value that is not valid UTF-8 read as a JS string would not be the stored one. After
 * `limit` seeks the rest is read by one scan of the index (`select distinct`), cheaper for mostly unique values.
 */
export function* distinctValues(db: Source["db"], table: string, column: string, limit = SKIP_SCAN_LIMIT): Generator<[string, Buffer | null]> {
  const c = quoteSqlite(column);
  const t = quoteSqlite(table);
  // [typeof, bytes, the value itself (a number is bound back as read: exact)]
  // "order by ... limit 1" rather than min(): min() under a subquery scanned the rest of the index (measured).
  const pick = (where: string) => db.prepare(`select typeof(${c}), cast(${c} as blob), ${c} from ${t} where ${c} is not null${where} order by ${c} limit 1`).raw(true);
  const first = pick("");
  // By type: a text value is compared as text (its bytes cast back), a blob as a blob, a number as it is.
  const after = { text: pick(` and ${c} > cast(? as text)`), blob: pick(` and ${c} > ?`), number: pick(` and ${c} > ?`) };
  let row = first.get() as [string, Buffer | null, unknown] | undefined;
  for (let seeks = 0; row; seeks++) {
    const [type, buf, value] = row;
    yield [type, buf];
    const bound = type === "text" || type === "blob" ? buf : value;
    if (seeks === limit) {
      const rest = db.prepare(`select typeof(v), cast(v as blob) from (select distinct ${c} as v from ${t} where ${c} > ${type === "text" ? "cast(? as text)" : "?"}) where v is not null`).raw(true);
      yield* rest.iterate(bound) as IterableIterator<[string, Buffer | null]>;
      return;
    }
    row = (type === "text" ? after.text : type === "blob" ? after.blob : after.number).get(bound) as [string, Buffer | null, unknown] | undefined;
  }
}

export const describeBadText = (b: BadText) => `${b.table}.${b.column} (${b.row}): ${b.problem} in "${b.value}"`;
