// The manifest: what a backup holds and how to check it. A backup counts (for restore, for incremental reuse, for
// --keep) only when it is complete: no INCOMPLETE marker, and a manifest whose own sha256 matches.
import { createHash } from "node:crypto";
import { UserError } from "../cli.ts";
import { INCOMPLETE, MANIFEST, MANIFEST_SUM, type BackupStore } from "./store.ts";

export const FORMAT = "mlflow-stack-backup/1";

export interface ObjectEntry {
  key: string;
  size: number;
  etag: string;
  sha256: string;
  /** file inside the backup */
  file: string;
}

export interface Manifest {
  format: typeof FORMAT;
  name: string;
  startedAt: string;
  finishedAt: string;
  mlflowVersion: string | null;
  alembicRevision: string | null;
  postgres: { serverVersion: string; dumpedWith: string };
  database: { file: string; bytes: number; sha256: string; tables: Record<string, number> };
  objects: { bucket: string; count: number; bytes: number; copied: number; reused: number; items: ObjectEntry[] };
  secrets: string;
}

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

export function serialize(manifest: Manifest): { text: string; sum: string } {
  const text = JSON.stringify(manifest, null, 1) + "\n";
  return { text, sum: `${sha(text)}  ${MANIFEST}\n` };
}

const isCount = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
const isSha = (s: unknown) => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);

/** Parses and checks a manifest's text against its sha256 file; one-line UserError for anything wrong. */
export function parseManifest(text: string, sumText: string | undefined, where: string): Manifest {
  const bad = (why: string) => new UserError(`the manifest of ${where} is ${why} — the backup cannot be trusted; use another one`);
  if (sumText === undefined) throw bad(`unverifiable (${MANIFEST_SUM} is missing)`);
  if (sumText.trim().split(/\s+/)[0] !== sha(text)) throw bad(`corrupt (its sha256 does not match ${MANIFEST_SUM})`);
  let m: Manifest;
  try {
    m = JSON.parse(text);
  } catch {
    throw bad("not valid JSON");
  }
  if (m?.format !== FORMAT) throw bad(`of an unknown format (${JSON.stringify(m?.format)}, expected ${FORMAT})`);
  const d = m.database;
  if (!d || typeof d.file !== "string" || !isCount(d.bytes) || !isSha(d.sha256) || typeof d.tables !== "object") throw bad("missing its database part");
  const o = m.objects;
  if (!o || !Array.isArray(o.items) || !isCount(o.count) || !isCount(o.bytes) || o.items.length !== o.count) throw bad("missing its object list");
  let bytes = 0;
  for (const i of o.items) {
    if (typeof i.key !== "string" || !isCount(i.size) || !isSha(i.sha256) || typeof i.file !== "string") throw bad("holding a broken object entry");
    bytes += i.size;
  }
  if (bytes !== o.bytes) throw bad("inconsistent (object bytes do not add up)");
  return m;
}

export interface BackupState {
  name: string;
  complete: boolean;
  manifest?: Manifest;
  /** why it does not count, when it does not */
  problem?: string;
}

/** Every backup of the destination with its state, oldest first. */
export async function listBackups(store: BackupStore): Promise<BackupState[]> {
  const out: BackupState[] = [];
  for (const name of await store.list()) {
    if (await store.has(name, INCOMPLETE)) {
      out.push({ name, complete: false, problem: "incomplete (it failed or was interrupted)" });
      continue;
    }
    if (!(await store.has(name, MANIFEST))) {
      out.push({ name, complete: false, problem: "no manifest" });
      continue;
    }
    try {
      const sum = (await store.has(name, MANIFEST_SUM)) ? await store.readText(name, MANIFEST_SUM) : undefined;
      out.push({ name, complete: true, manifest: parseManifest(await store.readText(name, MANIFEST), sum, name) });
    } catch (error) {
      out.push({ name, complete: false, problem: error instanceof Error ? error.message : String(error) });
    }
  }
  return out;
}

/** The complete backups to delete so that `keep` complete ones remain (oldest go first). Incomplete ones are never chosen. */
export function toPrune(backups: BackupState[], keep: number): string[] {
  const complete = backups.filter((b) => b.complete).map((b) => b.name).sort();
  return complete.slice(0, Math.max(0, complete.length - keep));
}
