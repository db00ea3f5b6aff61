// The floor of bench:migrate: what PostgreSQL itself needs to load the same rows into the same schema, with no client in
// the way. The source's rows are first written to files in the very COPY format `npm run migrate` streams (binary where
// every column allows, else text; not timed); then, timed, in ONE transaction as the migration: drop keys, indexes and
// foreign keys, TRUNCATE, server-side `COPY ... FROM '/file' WITH (FREEZE)` per table (FREEZE is legal because the
// TRUNCATE ran in the same transaction, else: "cannot perform COPY FREEZE because the table was not created or
// truncated in the current subtransaction"), build the same keys and indexes with the same settings, add the foreign
// keys, commit. Server-side COPY from a file needs a superuser or pg_read_server_files, and the server's OS user must
// be able to read the files (https://www.postgresql.org/docs/15/sql-copy.html). No client reads SQLite, encodes or
// verifies anything here: it is a bound no client can beat, not a migration.
import { chmodSync, closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { BINARY_HEADER, BINARY_TRAILER } from "./binary.ts";
import { sharedColumns } from "./copy.ts";
import { binaryWriters, PageEncoder } from "./page-encoder.ts";
import { readRows } from "./read-rows.ts";
import { buildKeysAndIndexes } from "./index-build.ts";
import type { Source } from "./source.ts";
import type { Catalog } from "./target.ts";

export interface FloorFile {
  table: string;
  path: string;
  columns: string[];
  binary: boolean;
  rows: number;
}

/** Writes every loaded table of `source` to `<dir>/<table>.copy` (mode 0644, for the server's OS user); not timed. */
export function writeFloorFiles(source: Source, catalog: Catalog, dir: string): FloorFile[] {
  const files: FloorFile[] = [];
  for (const name of catalog.order) {
    const src = source.tables.get(name);
    const target = catalog.tables.get(name);
    if (name === "alembic_version" || !src || !target || src.rows === 0) continue;
    const cols = sharedColumns(target, src.columns);
    if (cols.length === 0) continue;
    const binary = binaryWriters(name, cols) !== undefined;
    const path = join(dir, `${name}.copy`);
    const fd = openSync(path, "w", 0o644);
    // The bytes copy.ts sends, from the same encoder (its checksum is computed and unused), in the order ours reads
    // (primary-key order where SQLite has it for free): the key builds see the same input.
    const enc = new PageEncoder(name, cols, "record", binary, { batch: true });
    try {
      if (binary) writeSync(fd, BINARY_HEADER);
      for (const page of readRows(source.db, name, cols.map((c) => c.name))) for (const chunk of enc.encode(page)) writeSync(fd, chunk);
      const rest = enc.rest();
      if (rest) writeSync(fd, rest);
      if (binary) writeSync(fd, BINARY_TRAILER);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o644);
    files.push({ table: name, path, columns: cols.map((c) => c.quoted), binary, rows: enc.rows });
  }
  return files;
}

/** Loads the files in one transaction as the migration does (see the header); returns wall seconds per phase. */
export async function loadFloor(client: pg.Client, catalog: Catalog, files: FloorFile[]): Promise<{ phase: string; seconds: number }[]> {
  const phases: { phase: string; seconds: number }[] = [];
  const phase = async (name: string, fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    await fn();
    phases.push({ phase: name, seconds: (performance.now() - t0) / 1000 });
  };
  const loaded = new Set(files.map((f) => f.table));
  const qt = (t: string) => catalog.tables.get(t)!.qualified;
  const q = (sql: string) => client.query(sql);
  const keys = catalog.keys.filter((k) => loaded.has(k.table));
  const indexes = catalog.indexes.filter((i) => loaded.has(i.table));
  const schema = catalog.schema === "public" ? "" : `"${catalog.schema}".`;
  await q("begin");
  try {
    await phase("drop keys and truncate", async () => {
      for (const fk of catalog.foreignKeys) await q(`alter table ${qt(fk.table)} drop constraint "${fk.name.replaceAll('"', '""')}"`);
      for (const k of keys) await q(`alter table ${qt(k.table)} drop constraint "${k.name.replaceAll('"', '""')}"`);
      for (const i of indexes) await q(`drop index ${schema}"${i.name.replaceAll('"', '""')}"`);
      await q(`truncate ${[...loaded].map(qt).join(", ")}`);
    });
    await phase("server-side COPY FREEZE", async () => {
      for (const f of files) {
        const literal = `'${f.path.replaceAll("'", "''")}'`;
        const r = await q(`copy ${qt(f.table)} (${f.columns.join(", ")}) from ${literal} with (${f.binary ? "format binary, " : ""}freeze)`);
        if (r.rowCount !== f.rows) throw new Error(`floor: COPY loaded ${r.rowCount} rows of ${f.table}, the file holds ${f.rows}`);
      }
    });
    await phase("build keys and indexes", async () => {
      await buildKeysAndIndexes(client, keys, indexes, qt);
    });
    await phase("add foreign keys", async () => {
      for (const fk of catalog.foreignKeys) await q(fk.create);
    });
    await phase("commit", () => q("commit"));
  } catch (error) {
    await q("rollback").catch(() => {});
    throw error;
  }
  return phases;
}
