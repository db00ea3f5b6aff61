// Artifact locations: the SQLite MLflow recorded local paths (file:///…/mlartifacts/<exp>/… or a bare /…/mlruns/0);
// the stack serves artifacts as mlflow-artifacts:/<path> from s3://<bucket>/<path>. This maps one to the other.
import type pg from "pg";
import { quoteIdent, type Catalog } from "./target.ts";

/** The columns MLflow keeps artifact locations in (trace locations live in a tag). */
export const LOCATION_COLUMNS: { table: string; column: string; where?: string }[] = [
  { table: "experiments", column: "artifact_location" },
  { table: "runs", column: "artifact_uri" },
  { table: "logged_models", column: "artifact_location" },
  { table: "model_versions", column: "source" },
  { table: "model_versions", column: "storage_location" },
  { table: "trace_tags", column: "value", where: `key = 'mlflow.artifactLocation'` },
];

export interface LocationRewrite {
  table: string;
  column: string;
  rows: number;
}

/** The local path a location points at, or undefined when it is not local (s3://, mlflow-artifacts:, models:/ …). */
export function localPath(location: string): string | undefined {
  if (location.startsWith("file://")) {
    try {
      return decodeURIComponent(new URL(location).pathname);
    } catch {
      return undefined;
    }
  }
  return location.startsWith("/") ? location : undefined;
}

/** The artifact root the SQLite MLflow used: the common parent of its experiments' local locations. */
export function inferArtifactRoot(experimentLocations: string[]): string | undefined {
  const parents = experimentLocations
    .map(localPath)
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\/+$/, "").split("/").slice(0, -1));
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

/** `file:///root/a/b` or `/root/a/b` -> `a/b` (undefined when outside the root). */
export function relativeToRoot(location: string, root: string): string | undefined {
  const p = localPath(location);
  if (p === undefined) return undefined;
  const r = root.replace(/\/+$/, "");
  if (p === r) return "";
  return p.startsWith(r + "/") ? p.slice(r.length + 1) : undefined;
}

/** The stack's form of a location under `root`. */
export function stackLocation(location: string, root: string): string | undefined {
  const rel = relativeToRoot(location, root);
  return rel === undefined ? undefined : `mlflow-artifacts:/${rel}`;
}

/** Rewrites every location under `root` in the copied rows (inside the migration's transaction). */
export async function rewriteLocations(client: pg.Client, catalog: Catalog, root: string): Promise<LocationRewrite[]> {
  const r = root.replace(/\/+$/, "");
  const done: LocationRewrite[] = [];
  for (const { table, column, where } of LOCATION_COLUMNS) {
    const t = catalog.tables.get(table);
    if (!t || !t.columns.some((c) => c.name === column)) continue;
    const col = quoteIdent(column);
    // file://<root>/x and <root>/x both become mlflow-artifacts:/x (a file:// URL may carry %-escapes: left as is).
    const res = await client.query(
      `update ${t.qualified} set ${col} = 'mlflow-artifacts:/' || case
          when ${col} like 'file://%' then substr(${col}, length('file://' || $1::text) + 2)
          else substr(${col}, length($1::text) + 2) end
        where (${col} = $1 or ${col} like $2 or ${col} = 'file://' || $1 or ${col} like 'file://' || $2)${where ? ` and ${where}` : ""}`,
      [r, r.replace(/[\\%_]/g, (c) => "\\" + c) + "/%"],
    );
    done.push({ table, column, rows: res.rowCount ?? 0 });
  }
  return done;
}
