// The target: a PostgreSQL database whose schema MLflow created. Connection, catalog (tables, columns, keys,
// indexes, sequences) and the pre-flight checks (schema present, same revision, empty, nobody else connected).
import pg from "pg";
import { UserError } from "../cli.ts";
import { kindOf, type Kind } from "./convert.ts";

export interface TargetColumn {
  name: string;
  quoted: string;
  type: string;
  kind: Kind;
  generated: boolean;
}

export interface TargetTable {
  name: string;
  /** schema-qualified, quoted */
  qualified: string;
  columns: TargetColumn[];
}

export interface Catalog {
  schema: string;
  tables: Map<string, TargetTable>;
  /** Tables in foreign-key order: every table after the tables it references. */
  order: string[];
  /** Foreign keys, primary keys/unique constraints and plain indexes, with the SQL that recreates them. */
  foreignKeys: { table: string; name: string; create: string }[];
  keys: { table: string; name: string; create: string }[];
  indexes: { table: string; name: string; create: string }[];
  sequences: { sequence: string; table: string; column: string }[];
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Describes a target URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** The application_name of the migration's own sessions (a left-over one is recognised by it). */
export const APPLICATION_NAME = "mlflow-stack-migrate";

/** Connects, turning the usual failures into one line that says what to do. */
export async function connectTarget(url: string, password?: string): Promise<pg.Client> {
  let config: pg.ClientConfig;
  try {
    const u = new URL(url);
    if (!/^postgres(ql)?:$/.test(u.protocol)) throw new Error("scheme");
    // A password from a file goes into the connection string (pg lets the string's absent password win otherwise).
    if (password !== undefined && !u.password) u.password = encodeURIComponent(password);
    config = { connectionString: u.toString(), application_name: APPLICATION_NAME };
  } catch {
    throw new UserError(`--to must be a URL like postgresql://user@host:5432/db, got ${JSON.stringify(redactUrl(url))}`);
  }
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 10_000 });
  client.on("error", () => {}); // a dropped connection surfaces as a failed query
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw targetFailure(url, error);
  }
  return client;
}

export function targetFailure(url: string, error: unknown): Error {
  if (error instanceof UserError) return error;
  const e = error as { code?: string; message?: string; where?: string; column?: string; table?: string };
  const where = redactUrl(url);
  switch (e.code) {
    case "28P01":
    case "28000":
      return new UserError(`wrong password or user for ${where} (${e.message}) — check the URL, PGPASSWORD or --password-file`);
    case "3D000":
      return new UserError(`database does not exist: ${where} (${e.message})`);
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EHOSTUNREACH":
    case "ETIMEDOUT":
    case "ECONNRESET":
    case "ENETUNREACH":
    case "EAI_AGAIN":
    case "EADDRNOTAVAIL":
    case "EPIPE":
      return new UserError(`cannot reach PostgreSQL at ${where} (${e.code}) — is it running and is the address right? Nothing was written`);
    case "22001": // string_data_right_truncation: a value longer than MLflow's varchar(N) in PostgreSQL
      return new UserError(`a source value is longer than its target column allows (${e.message}${e.where ? `; ${e.where.split("\n")[0]}` : ""}) — SQLite does not enforce MLflow's length limits, PostgreSQL does: shorten that value in a copy of the source and migrate the copy; rolled back, nothing was written`);
    case "22021": // character_not_in_repertoire
    case "22P05": // untranslatable_character
      return new UserError(`PostgreSQL refused a text value (${e.message}${e.where ? `; ${e.where.split("\n")[0]}` : ""}) — pass --replace-invalid-text to store it with U+FFFD; rolled back, nothing was written`);
    case "57P01":
    case "57P02":
    case "57P03":
      return new UserError(`PostgreSQL at ${where} ended the session (${e.message}) — rolled back, nothing was written; re-run when it is up`);
  }
  if (e.code?.startsWith("23")) return new UserError(`the source's data breaks a rule of the target schema (${e.message}${e.table ? ` in ${e.table}` : ""}) — rolled back, nothing was written`);
  if (/timeout/i.test(e.message ?? "")) return new UserError(`cannot reach PostgreSQL at ${where} (timeout)`);
  if (/password/i.test(e.message ?? "")) return new UserError(`${e.message} for ${where} — put the password in the URL, PGPASSWORD or --password-file`);
  return error instanceof Error ? error : new Error(String(error));
}

export async function readCatalog(client: pg.Client): Promise<Catalog> {
  const schema = (await client.query<{ s: string }>("select current_schema() as s")).rows[0].s;
  const cols = await client.query<{ table: string; column: string; type: string; generated: string }>(
    `select c.relname as table, a.attname as column, format_type(a.atttypid, null) as type, a.attgenerated as generated
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p')
      order by c.relname, a.attnum`,
    [schema],
  );
  const tables = new Map<string, TargetTable>();
  for (const r of cols.rows) {
    let t = tables.get(r.table);
    if (!t) tables.set(r.table, (t = { name: r.table, qualified: `${quoteIdent(schema)}.${quoteIdent(r.table)}`, columns: [] }));
    t.columns.push({ name: r.column, quoted: quoteIdent(r.column), type: r.type, kind: kindOf(r.type), generated: r.generated !== "" });
  }
  const cons = await client.query<{ table: string; name: string; type: string; def: string; ref: string | null }>(
    `select c.relname as table, k.conname as name, k.contype as type, pg_get_constraintdef(k.oid) as def, r.relname as ref
       from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
       left join pg_class r on r.oid = k.confrelid
      where n.nspname = $1 and k.contype in ('p', 'u', 'f')
      order by c.relname, k.conname`,
    [schema],
  );
  const alter = (table: string, name: string, def: string) =>
    `alter table ${quoteIdent(schema)}.${quoteIdent(table)} add constraint ${quoteIdent(name)} ${def}`;
  const foreignKeys = cons.rows.filter((r) => r.type === "f").map((r) => ({ table: r.table, name: r.name, create: alter(r.table, r.name, r.def) }));
  const keys = cons.rows.filter((r) => r.type !== "f").map((r) => ({ table: r.table, name: r.name, create: alter(r.table, r.name, r.def) }));
  const idx = await client.query<{ table: string; name: string; def: string }>(
    `select c.relname as table, i.relname as name, pg_get_indexdef(x.indexrelid) as def
       from pg_index x join pg_class c on c.oid = x.indrelid join pg_class i on i.oid = x.indexrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and not exists (select 1 from pg_constraint k where k.conindid = x.indexrelid and k.contype in ('p', 'u', 'x'))
      order by c.relname, i.relname`,
    [schema],
  );
  const indexes = idx.rows.map((r) => ({ table: r.table, name: r.name, create: r.def }));
  const seq = await client.query<{ sequence: string; table: string; column: string }>(
    `select format('%I.%I', sn.nspname, s.relname) as sequence, t.relname as table, a.attname as column
       from pg_depend d join pg_class s on s.oid = d.objid and s.relkind = 'S'
       join pg_namespace sn on sn.oid = s.relnamespace
       join pg_class t on t.oid = d.refobjid join pg_namespace n on n.oid = t.relnamespace
       join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid
      where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i') and n.nspname = $1
      order by 1`,
    [schema],
  );
  // Foreign-key order (a table after those it references; self-references ignored).
  const deps = new Map<string, Set<string>>([...tables.keys()].map((t) => [t, new Set<string>()]));
  for (const r of cons.rows) if (r.type === "f" && r.ref && r.ref !== r.table) deps.get(r.table)?.add(r.ref);
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (t: string) => {
    if (state.get(t) === "done") return;
    if (state.get(t) === "visiting") return; // a cycle: constraints are rebuilt after the load anyway
    state.set(t, "visiting");
    for (const d of [...(deps.get(t) ?? [])].sort()) visit(d);
    state.set(t, "done");
    order.push(t);
  };
  for (const t of [...tables.keys()].sort()) visit(t);
  return { schema, tables, order, foreignKeys, keys, indexes, sequences: seq.rows };
}

/** The target's schema revision, or undefined when MLflow has not created its schema there yet. */
export async function targetAlembicVersion(client: pg.Client, catalog: Catalog): Promise<string | undefined> {
  if (!catalog.tables.has("alembic_version")) return undefined;
  const rows = (await client.query<{ v: string }>(`select version_num as v from ${catalog.tables.get("alembic_version")!.qualified}`)).rows;
  return rows.length === 1 ? rows[0].v : undefined;
}

/**
 * The experiments `npm run smoke` created and deleted again (name smoke-<stamp>, tag smoke=true, lifecycle "deleted"):
 * MLflow keeps deleted experiments and runs until `mlflow gc`, and smoke cannot purge them through the API. They are
 * not user data: the migration replaces them (every loaded table is truncated), as `mlflow gc` would have removed them.
 * So the README's order (up, smoke, migrate) works. Experiments smoke left active (--keep, a failed cleanup) count.
 */
export async function smokeLeftovers(client: pg.Client, catalog: Catalog): Promise<string[]> {
  const experiments = catalog.tables.get("experiments");
  const tags = catalog.tables.get("experiment_tags");
  if (!experiments || !tags) return [];
  const rows = await client.query<{ id: string }>(
    `select e.experiment_id::text as id from ${experiments.qualified} e
      where e.lifecycle_stage = 'deleted' and e.name ~ '^smoke-[0-9]{8}T[0-9]{6}-[0-9a-f]+$'
        and exists (select 1 from ${tags.qualified} t where t.experiment_id = e.experiment_id and t.key = 'smoke' and t.value = 'true')`,
  );
  return rows.rows.map((r) => r.id);
}

/**
 * Rows that are user data. A fresh MLflow schema holds the `Default` experiment (id 0) and the `default` workspace:
 * those do not count, nor do smoke's deleted leftovers (`smokeLeftovers`, passed in as `leftovers`) and the rows of
 * their runs. Returns e.g. ["runs: 14 rows", ...]; empty = the target is fresh.
 */
export async function userData(client: pg.Client, catalog: Catalog, leftovers: string[] = []): Promise<string[]> {
  const found: string[] = [];
  const runs = catalog.tables.get("runs");
  for (const t of catalog.order) {
    if (t === "alembic_version") continue;
    const table = catalog.tables.get(t)!;
    const has = (column: string) => table.columns.some((c) => c.name === column);
    const conditions: string[] = [];
    if (t === "experiments") conditions.push(`not (experiment_id = 0 and name = 'Default')`);
    if (t === "workspaces") conditions.push(`name <> 'default'`);
    if (leftovers.length && has("experiment_id")) conditions.push(`not (experiment_id::text = any($1))`);
    else if (leftovers.length && has("run_uuid") && runs) conditions.push(`run_uuid not in (select run_uuid from ${runs.qualified} where experiment_id::text = any($1))`);
    const where = conditions.length ? ` where ${conditions.join(" and ")}` : "";
    const params = where.includes("$1") ? [leftovers] : [];
    const n = Number((await client.query<{ n: string }>(`select count(*) as n from (select 1 from ${table.qualified}${where} limit 1000001) x`, params)).rows[0].n);
    if (n > 0) found.push(`${t}: ${n > 1_000_000 ? "over 1000000" : n} row${n === 1 ? "" : "s"}`);
  }
  return found;
}

/** Other sessions on the target database (an MLflow server keeps a pool of them open). */
export async function otherSessions(client: pg.Client): Promise<{ pid: number; application: string; client: string; state: string; since?: string }[]> {
  const rows = await client.query<{ pid: number; application: string; client: string | null; state: string | null; since: string | null }>(
    `select pid, application_name as application, client_addr::text as client, state, to_char(coalesce(xact_start, backend_start), 'YYYY-MM-DD HH24:MI:SS TZ') as since
       from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
  );
  return rows.rows.map((r) => ({ pid: r.pid, application: r.application, client: r.client ?? "local socket", state: r.state ?? "unknown", since: r.since ?? undefined }));
}
