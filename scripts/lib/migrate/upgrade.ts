// --upgrade-source: a source database from an OLDER MLflow is brought to the stack's schema revision by the stack's own
// image (`mlflow db upgrade`, which the mlflow entrypoint execs like any non-server command) — on a COPY in a temp dir;
// the original is never opened for writing. A source from a NEWER MLflow cannot be downgraded: alembic does not know
// its revision, and that is what we report.
import Database from "./sqlite.ts";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../cli.ts";
import type { Docker } from "./docker.ts";

export interface UpgradedCopy {
  path: string;
  revision: string;
  cleanup(): void;
}

export async function upgradeSourceCopy(
  from: string,
  revisions: { source: string; target: string },
  d: Docker,
  onPhase: (message: string) => void = () => {},
): Promise<UpgradedCopy> {
  const dir = mkdtempSync(join(tmpdir(), "mlflow-migrate-upgrade-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const copy = join(dir, "copy.db");
    onPhase(`copying ${from} to a temp file for the schema upgrade (the original stays as it is)`);
    // SQLite's backup API: a consistent copy even of a database in WAL mode (a plain file copy could miss the WAL).
    const src = new Database(from, { readonly: true, fileMustExist: true });
    try {
      await src.backup(copy);
    } finally {
      src.close();
    }
    chmodSync(copy, 0o600);
    onPhase(`upgrading the copy from schema ${revisions.source} to ${revisions.target} with the stack's MLflow (docker compose run mlflow mlflow db upgrade)`);
    // As our own uid: the container writes the copy (and SQLite's journal) in a directory only we can write to.
    const user = process.getuid && process.getgid ? ["--user", `${process.getuid()}:${process.getgid()}`] : [];
    const r = await d.compose(["run", "--rm", "-T", "--no-deps", ...user, "-v", `${dir}:/src`, "mlflow", "mlflow", "db", "upgrade", "sqlite:////src/copy.db"]);
    if (r.code !== 0) {
      const text = `${r.stderr}\n${r.stdout}`;
      if (/Can't locate revision|No such revision/i.test(text)) {
        throw new UserError(
          `the source is from a NEWER MLflow than the stack (source schema ${revisions.source} is unknown to the stack's MLflow, at ${revisions.target}) — raise MLFLOW_VERSION in .env, rebuild (docker compose build mlflow), then re-run; nothing was written`,
        );
      }
      const last = text.trim().split("\n").filter(Boolean).at(-1) ?? `exit ${r.code}`;
      throw new UserError(`upgrading the copy of the source failed: ${last} — nothing was written`);
    }
    const check = new Database(copy, { readonly: true, fileMustExist: true });
    let revision: string;
    try {
      revision = check.prepare("select version_num from alembic_version").pluck().get() as string;
    } finally {
      check.close();
    }
    if (revision !== revisions.target) {
      throw new UserError(
        `after the upgrade the copy is at schema ${revision}, the stack at ${revisions.target} — the source is from a newer MLflow than the stack (raise MLFLOW_VERSION) or the stack's schema is not current (docker compose run --rm mlflow db-upgrade); nothing was written`,
      );
    }
    return { path: copy, revision, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}
