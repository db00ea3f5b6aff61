// The source: an MLflow SQLite database, opened read-only (never changed), read in one snapshot.
import Database from "./sqlite.ts";
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { UserError } from "../cli.ts";

export interface SourceTable {
  name: string;
  /** Column names (generated columns left out: PostgreSQL computes its own). */
  columns: string[];
  /** Row count, counted when first asked (in the snapshot's read transaction): the artifact survey never asks. */
  readonly rows: number;
}

export interface Source {
  path: string;
  db: Database.Database;
  alembicVersion: string;
  tables: Map<string, SourceTable>;
  close(): void;
}

const SQLITE_MAGIC = "SQLite format 3\0";

/** A one-line reason for a SQLite error that means "this file is broken". */
export function sqliteFailure(path: string, error: unknown): UserError | undefined {
  const code = (error as { code?: string }).code ?? "";
  const message = error instanceof Error ? error.message : String(error);
  if (code === "SQLITE_NOTADB") return new UserError(`${path} is not a SQLite database (${message})`);
  if (code.startsWith("SQLITE_CORRUPT") || /malformed|corrupt/i.test(message)) {
    return new UserError(`${path} is a corrupt SQLite database (${message}); nothing was written`);
  }
  if (code.startsWith("SQLITE_READONLY")) {
    // Read-only access cannot roll back a hot journal (a writer crashed mid-transaction) nor set up a WAL index.
    return existsSync(`${path}-journal`)
      ? new UserError(`${path} has a hot journal (${path}-journal, left by a writer that crashed), which a read-only open cannot roll back (${code}) — copy both files (same names) to another folder, run sqlite3 on the copy there (sqlite3 COPY "pragma integrity_check" rolls the journal back) and migrate the copy; nothing was written`)
      : new UserError(`${path} cannot be opened read-only (${code}: ${message}) — copy it (with its -wal file, if any) to a writable folder and migrate the copy; nothing was written`);
  }
  if (code === "SQLITE_CANTOPEN" && existsSync(`${path}-wal`)) {
    return new UserError(`cannot open ${path} (${message}): a WAL database needs its folder writable for the -shm file — copy it with its -wal file to a writable folder and migrate the copy; nothing was written`);
  }
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CANTOPEN") || code === "SQLITE_BUSY") return new UserError(`cannot read ${path}: ${message} (${code}) — nothing was written`);
  return undefined;
}

export function openSource(path: string): Source {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${path} is not a file — pass the SQLite database of MLflow (e.g. --from ./mlflow.db)`);
    size = st.size;
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`source database not found: ${path} — pass the file MLflow used (sqlite:///PATH), e.g. --from ./mlflow.db`);
  }
  // Check the header ourselves: SQLite would happily "open" any file and fail only at the first read.
  const header = Buffer.alloc(16);
  try {
    const fd = openSync(path, "r");
    try {
      readSync(fd, header, 0, 16, 0);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (size < 100 || header.toString("latin1") !== SQLITE_MAGIC) {
    throw new UserError(`${path} is not a SQLite database (no SQLite header) — pass the file MLflow used (sqlite:///PATH)`);
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.defaultSafeIntegers(true);
    // One read transaction: every table is read from the same snapshot, even if something writes meanwhile.
    db.exec("BEGIN");
  } catch (error) {
    throw sqliteFailure(path, error) ?? error;
  }
  try {
    const names = (db.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'").all() as { name: string }[]).map((r) => r.name);
    if (!names.includes("alembic_version") || !names.includes("experiments") || !names.includes("runs")) {
      throw new UserError(`${path} is a SQLite database but not MLflow's (no alembic_version/experiments/runs tables)`);
    }
    const versions = db.prepare("select version_num from alembic_version").pluck().all() as string[];
    if (versions.length !== 1) {
      throw new UserError(`${path}: expected one schema revision in alembic_version, found ${versions.length} — is this an MLflow database?`);
    }
    const tables = new Map<string, SourceTable>();
    for (const name of names) {
      // table_xinfo: hidden 2/3 = generated columns.
      const cols = db.prepare(`select name, hidden from pragma_table_xinfo(?)`).all(name) as { name: string; hidden: bigint }[];
      let rows: number | undefined;
      const count = () => Number(db.prepare(`select count(*) from ${quoteSqlite(name)}`).pluck().get() as bigint);
      tables.set(name, {
        name,
        columns: cols.filter((c) => Number(c.hidden) === 0).map((c) => c.name),
        get rows() {
          try {
            return (rows ??= count());
          } catch (error) {
            throw sqliteFailure(path, error) ?? error;
          }
        },
      });
    }
    return { path, db, alembicVersion: versions[0], tables, close: () => db.close() };
  } catch (error) {
    db.close();
    if (error instanceof UserError) throw error;
    throw sqliteFailure(path, error) ?? error;
  }
}

export function quoteSqlite(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
