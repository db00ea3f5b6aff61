// Artifact locations: what the SQLite MLflow recorded, and where each one lives in the stack.
// The SQLite MLflow recorded local paths (file:///…/mlartifacts/<exp>/…, percent-encoded, or a bare /…/mlruns/0) or,
// when `mlflow server` proxied artifacts (the default since MLflow 2.0), mlflow-artifacts:/<path> served from its
// --artifacts-destination folder. The stack serves mlflow-artifacts:/<path> from s3://<bucket>/<path>
// (mlflow/docker-entrypoint.sh: --artifacts-destination s3://$MLFLOW_BUCKET/). `placement` is the ONE function that
// gives both the S3 key prefix and the rewritten location, so the two cannot disagree.
import type pg from "pg";
import { quoteIdent, type Catalog } from "./target.ts";

/**
 * The columns MLflow keeps artifact locations in (checked against the 3.11 schema; trace locations live in a tag).
 * `live`: SQL true when the row belongs to something not deleted; `required`: a live row's location must hold files
 * (a run or model folder); experiments and traces (spans are in the database) may have none.
 */
export const LOCATION_COLUMNS: { table: string; column: string; id: string; live: string; required: boolean; where?: string }[] = [
  { table: "experiments", column: "artifact_location", id: "experiment_id", live: "lifecycle_stage = 'active'", required: false },
  { table: "runs", column: "artifact_uri", id: "run_uuid", live: "lifecycle_stage = 'active'", required: true },
  { table: "logged_models", column: "artifact_location", id: "model_id", live: "coalesce(lifecycle_stage, 'active') = 'active'", required: true },
  { table: "model_versions", column: "source", id: "name || ' v' || version", live: "coalesce(current_stage, '') <> 'Deleted_Internal'", required: true },
  { table: "model_versions", column: "storage_location", id: "name || ' v' || version", live: "coalesce(current_stage, '') <> 'Deleted_Internal'", required: true },
  { table: "trace_tags", column: "value", id: "request_id", live: "1 = 1", required: false, where: `key = 'mlflow.artifactLocation'` },
];

export type LocationKind = "local" | "server" | "remote" | "reference";

export interface Classified {
  kind: LocationKind;
  /** local: the absolute path (percent-decoded); server: the path below the artifacts destination (decoded, no leading /). */
  path?: string;
}

const REMOTE = /^(s3|s3a|gs|wasbs?|abfss?|hdfs|viewfs|dbfs|ftp|sftp|https?|oss|r2|uc):/i;

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a lone % is a literal % (MLflow's urllib.parse.unquote leaves it too)
  }
}

/**
 * Classifies a location as MLflow reads it: file:// URLs are percent-decoded (MLflow's local_file_uri_to_path uses
 * urllib.request.url2pathname), bare absolute paths are taken as they are; mlflow-artifacts:/p and
 * mlflow-artifacts://host/p name p below the server's --artifacts-destination (decoded: the client sends it in a URL).
 */
export function classify(location: string): Classified {
  if (/^file:/i.test(location)) {
    const m = /^file:(?:\/\/[^/]*)?(\/.*)?$/i.exec(location);
    const path = m?.[1] ? decode(m[1].split(/[?#]/)[0]) : undefined;
    return path ? { kind: "local", path } : { kind: "reference" };
  }
  if (location.startsWith("/")) return { kind: "local", path: location };
  if (/^mlflow-artifacts:/i.test(location)) {
    const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/i.exec(location)!;
    return { kind: "server", path: decode(m[1].split(/[?#]/)[0]).replace(/\/+$/, "") };
  }
  if (REMOTE.test(location)) return { kind: "remote" };
  return { kind: "reference" }; // models:/, runs:/, a relative path, a made-up source: not files we can find
}

/** The artifact root the SQLite MLflow used: the common parent of its experiments' local locations. */
export function inferArtifactRoot(experimentLocations: string[]): string | undefined {
  const parents = experimentLocations
    .map((l) => classify(l))
    .filter((c) => c.kind === "local")
    .map((c) => c.path!.replace(/\/+$/, "").split("/").slice(0, -1));
  if (parents.length === 0) return undefined;
  let common = parents[0];
  for (const p of parents.slice(1)) {
    let i = 0;
    while (i < common.length && i < p.length && common[i] === p[i]) i++;
    common = common.slice(0, i);
  }
  const root = common.join("/");
  return root === "" ? undefined : root;
}

/** The path of a classified location below the artifact root (`root` = the recorded path of the root, for local
 * locations): "" for the root itself, undefined when outside it or not a file location. */
export function relativeToRoot(c: Classified, root: string | undefined): string | undefined {
  if (c.kind === "server") return c.path!;
  if (c.kind !== "local" || root === undefined) return undefined;
  const p = c.path!.replace(/\/+$/, "");
  const r = root.replace(/\/+$/, "");
  if (p === r) return "";
  return p.startsWith(r + "/") ? p.slice(r.length + 1) : undefined;
}

/**
 * Where the files below `rel` (a path below the artifact root, "/"-separated, decoded) go: the S3 key prefix and the
 * location the stack's rows then hold. A %, ? or # in a name is escaped so MLflow's client (which puts the path into a
 * URL) reads the same name back; other characters (spaces too) stay as the MLflow server itself writes them.
 */
export function placement(rel: string): { key: string; location: string } {
  const clean = rel.replace(/^\/+|\/+$/g, "");
  return { key: clean, location: "mlflow-artifacts:/" + clean.replace(/[%?#]/g, (c) => encodeURIComponent(c)) };
}

export interface LocationRewrite {
  table: string;
  column: string;
  rows: number;
}

/** Sets every location in `rewrites` (old value -> new value) in the copied rows (inside the migration's transaction). */
export async function rewriteLocations(client: pg.Client, catalog: Catalog, rewrites: Map<string, string>): Promise<LocationRewrite[]> {
  const done: LocationRewrite[] = [];
  const changed = [...rewrites].filter(([from, to]) => from !== to);
  if (changed.length === 0) return done;
  await client.query(`create temp table migrate_locations (old text primary key, new text not null) on commit drop`);
  await client.query(`insert into migrate_locations select * from unnest($1::text[], $2::text[])`, [changed.map((c) => c[0]), changed.map((c) => c[1])]);
  for (const { table, column, where } of LOCATION_COLUMNS) {
    const t = catalog.tables.get(table);
    if (!t || !t.columns.some((c) => c.name === column)) continue;
    const col = quoteIdent(column);
    const res = await client.query(`update ${t.qualified} t set ${col} = m.new from migrate_locations m where t.${col} = m.old${where ? ` and t.${where}` : ""}`);
    done.push({ table, column, rows: res.rowCount ?? 0 });
  }
  return done;
}
