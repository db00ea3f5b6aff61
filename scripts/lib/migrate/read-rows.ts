// Reading a source table in pages: in primary-key order when SQLite has it for free, by key ("where (pk) > (last
// key) order by pk limit N"), optionally as one of N lanes (lanes.ts) that take every N-th page.
import type Database from "./sqlite.ts";
import type { SqliteValue } from "./convert.ts";
import { quoteSqlite } from "./source.ts";

/** Rows per page of readRows. */
export const PAGE_ROWS = 1024;

/**
 * " order by <primary key>" when SQLite can read the table in that order for free (an index holding every column we
 * read, or the rowid), else "". PostgreSQL then builds the primary key from (nearly) presorted rows, which its sort
 * notices (measured: 7.6 s instead of 10.0 s for MLflow's 6-column metrics key over 5M rows).
 */
export function keyOrder(db: Database.Database, table: string, columns: string[], pk = primaryKey(db, table)): string {
  return keyOrderPlan(db, table, columns, pk).order;
}

/** keyOrder, with the step of SQLite's query plan that reads in that order ("" when there is none): it names the
 * covering index (file-rows.ts reads that index's b-tree). */
export function keyOrderPlan(db: Database.Database, table: string, columns: string[], pk = primaryKey(db, table)): { order: string; plan: string } {
  if (pk.length === 0) return { order: "", plan: "" };
  const order = ` order by ${pk.map(quoteSqlite).join(", ")}`;
  const plan = (db.prepare(`explain query plan select ${columns.map(quoteSqlite).join(", ")} from ${quoteSqlite(table)}${order}`).all() as { detail: string }[]).map((r) => r.detail);
  const free = plan.length === 1 && !/TEMP B-TREE/.test(plan[0]) && (/COVERING INDEX|INTEGER PRIMARY KEY/.test(plan[0]) || /^SCAN \S+$/.test(plan[0]));
  return free ? { order, plan: plan[0] } : { order: "", plan: "" };
}

function primaryKey(db: Database.Database, table: string): string[] {
  return db.prepare(`select name from pragma_table_info(?) where pk > 0 order by pk`).pluck().all(table) as string[];
}

/** How readRows pages `table` by key: its order, key columns and their positions among `columns`; undefined when it
 * cannot (no free key order, or a key column not among those read: the covering index holds them all). */
function keyPaging(db: Database.Database, table: string, columns: string[]): { order: string; pk: string[]; at: number[] } | undefined {
  const pk = primaryKey(db, table);
  const order = keyOrder(db, table, columns, pk);
  const at = pk.map((k) => columns.indexOf(k));
  return order && at.every((i) => i >= 0) ? { order, pk, at } : undefined;
}

/** Whether readRows can page `table` by key: what lanes need. */
export function pagedByKey(db: Database.Database, table: string, columns: string[]): boolean {
  return keyPaging(db, table, columns) !== undefined;
}

/**
 * Whether another connection to the source file is sure to read the snapshot of ours: not in WAL mode (there it could
 * see a later one); in rollback-journal mode the read transaction we hold keeps every writer out.
 */
export function sameSnapshot(db: Database.Database): boolean {
  return String(db.pragma("journal_mode", { simple: true })).toLowerCase() !== "wal";
}

export interface ReadOptions {
  /** Page by key (default true). False when a key column holds text that is not valid UTF-8 (--replace-invalid-text):
   * the value read is not the one stored, so it cannot be the next page's lower bound. */
  paged?: boolean;
  pageRows?: number;
  /** Read only pages lane, lane + lanes, lane + 2 * lanes, ... (needs pagedByKey; default: every page). */
  lane?: number;
  lanes?: number;
}

/**
 * The rows of `table` (the given columns, raw arrays), in pages. In primary-key order when SQLite has it for free
 * (keyOrder), read `pageRows` at a time by key: one call into SQLite per page instead of one per row of a long
 * iterate(). A lane skips the other lanes' pages with OFFSET (SQLite steps over those rows without handing them to
 * JavaScript). A table without such an order, or `paged: false`, is read by one iterate() (yielded in pages all the same).
 */
export function* readRows(db: Database.Database, table: string, columns: string[], { paged = true, pageRows = PAGE_ROWS, lane = 0, lanes = 1 }: ReadOptions = {}): Generator<SqliteValue[][]> {
  const select = `select ${columns.map(quoteSqlite).join(", ")} from ${quoteSqlite(table)}`;
  const paging = paged ? keyPaging(db, table, columns) : undefined;
  if (!paging) {
    if (lanes > 1) throw new Error(`readRows: ${table} cannot be read in lanes (not paged by key)`);
    let page: SqliteValue[][] = [];
    for (const row of db.prepare(select + keyOrder(db, table, columns)).raw(true).iterate() as IterableIterator<SqliteValue[]>) {
      page.push(row);
      if (page.length === pageRows) (yield page), (page = []);
    }
    if (page.length) yield page;
    return;
  }
  const { order, pk, at } = paging;
  const first = db.prepare(`${select}${order} limit ${pageRows}${lane > 0 ? ` offset ${lane * pageRows}` : ""}`).raw(true);
  const skip = (lanes - 1) * pageRows;
  const next = db.prepare(`${select} where (${pk.map(quoteSqlite).join(", ")}) > (${pk.map(() => "?").join(", ")})${order} limit ${pageRows}${skip > 0 ? ` offset ${skip}` : ""}`).raw(true);
  let page = first.all() as SqliteValue[][];
  while (page.length) {
    yield page;
    if (page.length < pageRows) return;
    const last = page[page.length - 1];
    page = next.all(...at.map((i) => last[i])) as SqliteValue[][];
  }
}
