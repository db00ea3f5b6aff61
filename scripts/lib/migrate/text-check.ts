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
    // Only rows with a BLOB, a NUL (length() of text stops there) or a byte outside ASCII are read and checked here.
    const suspect = cols
      .map((c) => quoteSqlite(c))
      .map((c) => `typeof(${c}) = 'blob' or length(cast(${c} as blob)) <> length(${c}) or ${c} glob '*[^' || char(1) || '-' || char(127) || ']*'`)
      .join(" or ");
    const sql = `select ${keyCols.map((k) => (k === "rowid" ? "rowid" : quoteSqlite(k))).join(", ")}, ${cols.map((c) => `typeof(${quoteSqlite(c)}), cast(${quoteSqlite(c)} as blob)`).join(", ")} from ${quoteSqlite(name)} where ${suspect}`;
    for (const r of source.db.prepare(sql).raw(true).all() as unknown[][]) {
      const row = keyCols.map((k, i) => `${k}=${r[i] instanceof Buffer ? show(r[i] as Buffer) : String(r[i])}`).join(", ");
      cols.forEach((column, i) => {
        const type = r[keyCols.length + 2 * i] as string;
        const buf = r[keyCols.length + 2 * i + 1] as Buffer | null;
        if (buf === null || type === "null") return;
        const problem = type === "blob" ? "BLOB" : buf.includes(0) ? "NUL byte" : !isUtf8(buf) ? "invalid UTF-8" : undefined;
        if (problem) found.push({ table: name, column, row, problem, value: show(buf) });
      });
    }
  }
  return found;
}

export const describeBadText = (b: BadText) => `${b.table}.${b.column} (${b.row}): ${b.problem} in "${b.value}"`;
