// npm run upgrade --to VERSION: the MLflow upgrade as MLflow's release notes ask for it (stop every writer, keep a
// restorable backup, run `mlflow db upgrade`; mixed-version servers are not supported), gated end to end:
//   1. build the new image          (a version that does not exist fails here: the running stack is not touched)
//   2. stop MLflow                  (the only writer; db, minio and the proxy keep running)
//   3. back up                      (database + objects, like npm run backup; skipped with --no-backup, loudly)
//   4. upgrade the schema           (docker compose run --rm mlflow db-upgrade with the NEW image)
//   5. start MLflow, wait healthy   (docker compose up -d --wait --no-deps mlflow with the NEW image)
//   6. smoke                        (npm run smoke's checks through the proxy)
//   7. write MLFLOW_VERSION to .env (only now: until here .env still names the old version)
// A failure in 4-6 rolls back: MLflow stopped, the database restored from the backup of step 3, the old image started.
// Ctrl-C (SIGINT) or SIGTERM (`signal`): the step under way ends (in a terminal its docker command gets the same Ctrl-C),
// then before step 4 MLflow is started again as it was and nothing is upgraded; from step 4 on it is the rollback
// above. Either way the exit code is 130, as for any command a Ctrl-C stopped.
// The new version reaches Compose as MLFLOW_VERSION in the environment, which wins over .env for interpolation
// (https://docs.docker.com/compose/how-tos/environment-variables/envvars-precedence/).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../cli.ts";
import { setEnvValue } from "../envfile.ts";
import { replaceFile } from "../secrets.ts";
import { check, composeServices, isRunning, type Docker } from "../migrate/docker.ts";
import { compareVersions, isVersion } from "../backup/versions.ts";

export interface UpgradeBackup {
  /** where the backup is, for messages */
  where: string;
  /** puts the database of the backup back (MLflow stopped) */
  restoreDatabase(): Promise<void>;
}

export interface UpgradeOptions {
  dir: string;
  from: string;
  to: string;
  /** docker with MLFLOW_VERSION=version in its environment */
  dockerFor(version: string): Docker;
  /** undefined = --no-backup */
  backup?: () => Promise<UpgradeBackup>;
  smoke(version: string): Promise<{ ok: boolean; summary: string }>;
  onPhase?: (message: string) => void;
  /** aborted by the CLI on SIGINT/SIGTERM; its reason is the signal's name */
  signal?: AbortSignal;
}

/** Exit code of a run a signal stopped (128 + SIGINT's 2, as shells report it). */
export const INTERRUPTED = 130;

/** `p`, or "aborted" as soon as `signal` is aborted (p keeps running; its result is then ignored). */
function unlessAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<{ value: T } | "aborted"> {
  if (!signal) return p.then((value) => ({ value }));
  if (signal.aborted) return Promise.resolve("aborted");
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (value) => (signal.removeEventListener("abort", onAbort), resolve({ value })),
      (error) => (signal.removeEventListener("abort", onAbort), signal.aborted ? resolve("aborted") : reject(error)),
    );
  });
}

export interface UpgradeResult {
  from: string;
  to: string;
  backup: string | null;
  smoke: string;
  seconds: number;
}

export function checkVersions(from: string | undefined, to: string): void {
  if (!isVersion(to)) throw new UserError(`--to ${JSON.stringify(to)} is not an MLflow version (like 3.19.0)`);
  if (!from) throw new UserError("no MLFLOW_VERSION in .env — run npm run bootstrap in the stack's directory");
  if (!isVersion(from)) throw new UserError(`MLFLOW_VERSION=${from} in .env is not a version like 3.18.0 — fix .env`);
  const c = compareVersions(to, from);
  if (c < 0) throw new UserError(`${to} is older than the stack's MLflow ${from}: a downgrade is not supported (MLflow's schema cannot go back) — restore a backup taken before the upgrade instead (npm run restore)`);
  if (c === 0) throw new UserError(`the stack already runs MLflow ${from}; nothing to do`);
}

export function plan(from: string, to: string, withBackup: boolean, backupTo: string): string[] {
  return [
    `build the MLflow ${to} image            MLFLOW_VERSION=${to} docker compose build mlflow`,
    `stop MLflow (the only writer)          docker compose stop mlflow`,
    withBackup ? `back up database and artifacts         npm run backup -- --to ${backupTo}` : `NO BACKUP (--no-backup): a failure after the schema step cannot be rolled back`,
    `upgrade the database schema            MLFLOW_VERSION=${to} docker compose run --rm -T --no-deps mlflow db-upgrade`,
    `start MLflow ${to}, wait until healthy  MLFLOW_VERSION=${to} docker compose up -d --wait --no-deps mlflow`,
    `smoke checks through the proxy         npm run smoke`,
    `write MLFLOW_VERSION=${to} to .env`,
    `on a failure after the schema step: stop MLflow, restore the database from the backup, start MLflow ${from} again`,
  ];
}

function writeVersion(dir: string, version: string) {
  const path = join(dir, ".env");
  const text = readFileSync(path, "utf8");
  replaceFile(path, setEnvValue(text, "MLFLOW_VERSION", version), statSync(path).mode & 0o777);
}

export async function runUpgrade(o: UpgradeOptions): Promise<UpgradeResult> {
  const phase = o.onPhase ?? (() => {});
  const t0 = performance.now();
  checkVersions(o.from, o.to);
  const oldDocker = o.dockerFor(o.from);
  const newDocker = o.dockerFor(o.to);
  const services = await composeServices(oldDocker);
  const down = ["db", "minio"].filter((s) => !isRunning(services, s));
  if (down.length) throw new UserError(`the stack's ${down.join(" and ")} ${down.length > 1 ? "are" : "is"} not running — start the stack (docker compose up -d --wait), then re-run`);
  const wasRunning = isRunning(services, "mlflow");

  const aborted = () => o.signal?.aborted === true;
  const signalName = () => String(o.signal?.reason ?? "SIGINT");
  let stopped = false;
  const startOld = async () => {
    phase(`starting MLflow ${o.from} again`);
    check(await oldDocker.compose(["up", "-d", "--wait", "--no-deps", "mlflow"]), `starting MLflow ${o.from}`, "see docker compose logs mlflow");
  };
  // Interrupted before the schema step: nothing was upgraded; MLflow runs again if it ran.
  const interruptedBefore = async (during: string): Promise<never> => {
    let again = "";
    if (stopped && wasRunning) {
      try {
        await startOld();
        again = `; MLflow ${o.from} runs again`;
      } catch (error) {
        again = `; MLflow ${o.from} could NOT be started again (${error instanceof Error ? error.message : error}) — run docker compose up -d mlflow`;
      }
    }
    throw new UserError(`interrupted (${signalName()}) ${during}, before the schema upgrade: nothing was upgraded${again}; .env is unchanged`, INTERRUPTED);
  };

  phase(`building the MLflow ${o.to} image (docker compose build mlflow)`);
  const built = await newDocker.compose(["build", "mlflow"]);
  if (aborted()) await interruptedBefore("while building the image");
  check(built, `building the MLflow ${o.to} image`, `does MLflow ${o.to} exist (ghcr.io/mlflow/mlflow:v${o.to})? The running stack was not touched`);

  phase("stopping MLflow (docker compose stop mlflow)");
  const stop = await oldDocker.compose(["stop", "mlflow"]);
  stopped = true;
  if (aborted()) await interruptedBefore("while stopping MLflow");
  check(stop, "docker compose stop mlflow");

  let backup: UpgradeBackup | undefined;
  if (o.backup) {
    try {
      const got = await unlessAborted(o.backup(), o.signal);
      if (got === "aborted") return await interruptedBefore("during the backup (it stays marked INCOMPLETE)");
      backup = got.value;
    } catch (error) {
      if (error instanceof UserError && error.exitCode === INTERRUPTED) throw error;
      if (wasRunning) await startOld().catch(() => {});
      throw new UserError(`the backup before the upgrade failed: ${error instanceof Error ? error.message : error} — nothing was upgraded${wasRunning ? `; MLflow ${o.from} runs again` : ""}`);
    }
  } else {
    phase(`WARNING: --no-backup: if the upgrade fails after the schema step, the database cannot be rolled back`);
  }
  if (aborted()) await interruptedBefore("after the backup");

  let step = "the schema upgrade (db-upgrade)";
  let smokeSummary = "";
  try {
    phase(`upgrading the database schema with MLflow ${o.to} (docker compose run --rm mlflow db-upgrade)`);
    const upgraded = await newDocker.compose(["run", "--rm", "-T", "--no-deps", "mlflow", "db-upgrade"]);
    if (aborted()) throw new UserError(`interrupted (${signalName()})`);
    check(upgraded, "the schema upgrade");
    step = `starting MLflow ${o.to}`;
    phase(`starting MLflow ${o.to} and waiting until it is healthy`);
    const up = await newDocker.compose(["up", "-d", "--wait", "--no-deps", "mlflow"]);
    if (aborted()) throw new UserError(`interrupted (${signalName()})`);
    check(up, `starting MLflow ${o.to}`);
    step = "the smoke checks";
    phase("running the smoke checks through the proxy");
    const smoke = await o.smoke(o.to);
    smokeSummary = smoke.summary;
    if (aborted()) throw new UserError(`interrupted (${signalName()})`);
    if (!smoke.ok) throw new UserError(`the smoke checks failed (${smoke.summary})`);
  } catch (error) {
    const code = aborted() ? INTERRUPTED : 1;
    const reason = aborted() ? `interrupted (${signalName()})` : error instanceof Error ? error.message : String(error);
    if (!backup) {
      throw new UserError(`upgrade to ${o.to} failed at ${step}: ${reason} — no backup was taken (--no-backup), so nothing was rolled back; .env still says MLFLOW_VERSION=${o.from}. Restore your own backup (npm run restore) or fix and re-run`, code);
    }
    phase(`${step} failed: rolling back (database from ${backup.where}, MLflow ${o.from})`);
    try {
      check(await newDocker.compose(["stop", "mlflow"]), "docker compose stop mlflow");
      await backup.restoreDatabase();
      await startOld();
    } catch (rollbackError) {
      throw new UserError(
        `upgrade to ${o.to} failed at ${step}: ${reason}; the ROLLBACK failed too: ${rollbackError instanceof Error ? rollbackError.message : rollbackError} — restore by hand: npm run restore -- --from ${backup.where} --replace`,
        code,
      );
    }
    throw new UserError(`upgrade to ${o.to} failed at ${step}: ${reason} — rolled back: the database is restored from ${backup.where} and MLflow ${o.from} runs again; .env is unchanged`, code);
  }
  writeVersion(o.dir, o.to);
  phase(`MLFLOW_VERSION=${o.to} written to .env`);
  return { from: o.from, to: o.to, backup: backup?.where ?? null, smoke: smokeSummary, seconds: (performance.now() - t0) / 1000 };
}
