// npm run migrate -- --from ./mlflow.db [--artifacts ./mlartifacts] [--to postgresql://user@host:5432/db]
// Moves an existing MLflow (SQLite database + local artifacts) into the stack; see scripts/lib/migrate/.
// Without --to it migrates into the local stack (lib/migrate/local-stack.ts), stopping and restarting its MLflow.
import { readFileSync } from "node:fs";
import { confirm, parseCli, runCli, UsageError, UserError } from "./lib/cli.ts";
import { parseEnv } from "./lib/envfile.ts";
import { passwordFromFile, readIfExists } from "./lib/secrets.ts";
import { prepareArtifacts, surveyArtifacts, type ArtifactOptions, type PreparedArtifacts } from "./lib/migrate/artifacts.ts";
import { docker } from "./lib/migrate/docker.ts";
import { openLocalStack, stopMlflow, type LocalStack } from "./lib/migrate/local-stack.ts";
import { upgradeSourceCopy } from "./lib/migrate/upgrade.ts";
import { migrate, type MigrateEvent, type Plan } from "./lib/migrate/migrate.ts";
import { formatSummary, progressPrinter } from "./lib/migrate/report.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"; // as smoke.ts: a notice, not a migrate problem

const HELP = `Usage: npm run migrate -- --from FILE [options]

Copies an MLflow SQLite database (and its local artifacts) into the stack's PostgreSQL and bucket, in one verified
transaction. The target must hold MLflow's schema (start the stack once) and no data (or pass --replace).
Before anything is written it plans the artifacts: every location in the database, by kind, the files and bytes to
upload, and every location that points at nothing; it stops when a live run or model points at nothing. After the
upload and before the commit every planned object is checked in the bucket (size and checksum).

  --from FILE            the SQLite database MLflow used (sqlite:///FILE); opened read-only, never changed
  --to URL               postgresql://user[:password]@host:port/db (password also from PGPASSWORD or --password-file);
                         without --to: the local stack of this directory (see below)
  --upgrade-source       if the source comes from an OLDER MLflow: upgrade a temp copy with the stack's image
                         (docker compose run mlflow mlflow db upgrade) and migrate that; the original stays as it is
  --password-file FILE   file holding the database password
  --artifacts DIR        the artifact folder here: for file:// locations the folder they name (default: that path, if it
                         is here); for mlflow-artifacts:/ ones the old server's --artifacts-destination (default
                         ./mlartifacts beside the --from file)
  --artifact-root PATH   the path the database recorded for DIR (default: the common parent of the experiments' folders)
  --allow-missing-artifacts  migrate although live runs/models point at nothing (they are listed)
  --no-artifacts         copy the database only (the runs then point at nothing in the stack)
  --s3-endpoint URL      S3 endpoint for the artifacts (default: $MLFLOW_S3_ENDPOINT_URL)
  --bucket NAME          bucket (default: $MLFLOW_BUCKET, else MLFLOW_BUCKET from .env)
                         S3 keys: $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY (or --s3-secret-file FILE)
  --s3-secret-file FILE  file holding the S3 secret key
  --replace              overwrite a target that already holds data (all of it is deleted in the same transaction;
                         the replaced data's objects stay in the bucket: nothing in S3 is deleted)
  --replace-invalid-text store text that is not valid UTF-8, NUL bytes and BLOBs in text columns with U+FFFD in place
                         of the bad bytes, and list each one (default: refuse, naming table, column and row)
  --keep-webhooks-active copy the registry webhooks as they are (default: copied DISABLED; they call the old URLs)
  --dry-run              check everything and print what would be copied; write nothing
  --workers N            worker threads reading a big table through SQLite's library beside the copying one, rows
                         still in key order (default 0: the file reader, one thread, is faster on 2 cores)
  --sqlite-reader        read every table through SQLite's library (about 2x slower); by default tables are read
                         straight from the database file, with SQLite re-reading a sample of rows to check it
  --yes                  do not ask for confirmation
  --json                 print the result as JSON on stdout (progress stays on stderr)
  -h, --help             this text

Without --to: the local stack (run from its directory, started with docker compose up -d --wait). Credentials come from
.env and secrets/; PostgreSQL and MinIO are reached through a temporary forwarder container on loopback ports, and the
MLflow server is stopped for the migration (asked first, unless --yes) and started again afterwards, also on failure.`;

function readSecretFile(path: string, what: string): string {
  try {
    return passwordFromFile(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UserError(`cannot read ${what} file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

function workerCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new UsageError(`--workers must be a whole number from 0 to 64, got ${JSON.stringify(text)}`);
  return n;
}

function envFileValue(name: string): string | undefined {
  const text = readIfExists(".env");
  return text === undefined ? undefined : parseEnv(text)[name];
}

const OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  "password-file": { type: "string" },
  artifacts: { type: "string" },
  "artifact-root": { type: "string" },
  "no-artifacts": { type: "boolean" },
  "allow-missing-artifacts": { type: "boolean" },
  "replace-invalid-text": { type: "boolean" },
  "sqlite-reader": { type: "boolean" },
  "keep-webhooks-active": { type: "boolean" },
  "s3-endpoint": { type: "string" },
  bucket: { type: "string" },
  "s3-secret-file": { type: "string" },
  replace: { type: "boolean" },
  "dry-run": { type: "boolean" },
  "upgrade-source": { type: "boolean" },
  workers: { type: "string" },
  yes: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** System errors a user can meet and fix (a read-only or full disk, too many open files): one line, not a bug report. */
function systemFailure(error: unknown): unknown {
  const e = error as NodeJS.ErrnoException;
  if (error instanceof UserError || !e || typeof e.code !== "string") return error;
  if (!["EACCES", "EPERM", "EROFS", "ENOSPC", "EMFILE", "ENFILE", "EDQUOT"].includes(e.code)) return error;
  return new UserError(`${e.message.split("\n")[0]} — ${e.code === "ENOSPC" || e.code === "EDQUOT" ? "free some space" : e.code.startsWith("E") && e.code.endsWith("FILE") ? "raise the open-files limit (ulimit -n)" : "check the permissions of that path (a read-only folder?)"}, then re-run; nothing was written to the target`);
}

async function main(): Promise<number> {
  const { values } = parseCli("migrate", process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  if (!values.from) throw new UsageError("--from FILE is required (the SQLite database MLflow used); see --help");
  if (values["no-artifacts"] && (values.artifacts || values["artifact-root"] || values["allow-missing-artifacts"])) {
    throw new UsageError("--no-artifacts copies no artifacts: drop --artifacts, --artifact-root and --allow-missing-artifacts, or --no-artifacts");
  }
  const json = !!values.json;
  const interactive = process.stdin.isTTY && process.stderr.isTTY;
  if (!values.yes && !values["dry-run"] && !interactive) throw new UsageError("not on a terminal: pass --yes to migrate without confirmation");
  const progress = progressPrinter(process.stderr);
  const phase = (message: string) => progress({ type: "phase", message });
  const d = docker(process.cwd());
  const cleanups: (() => Promise<void>)[] = [];
  let cleaning: Promise<unknown> | undefined;
  // Restart MLflow first, then stop the forwarder; every step runs even if one fails (the first failure is reported).
  const cleanUp = () =>
    (cleaning ??= (async () => {
      let failed: unknown;
      for (const c of cleanups) await c().catch((e) => (failed ??= e));
      if (failed) throw failed;
    })());
  // Ctrl-C or a kill: PostgreSQL rolls the open transaction back when we disconnect; MLflow must not stay stopped.
  const onSignal = (signal: NodeJS.Signals) => {
    phase(`${signal}: stopping; the database transaction is rolled back, nothing is written`);
    void cleanUp()
      .catch((e) => process.stderr.write(`migrate: ${e instanceof Error ? e.message : e}\n`))
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    let to = values.to ?? process.env.MLFLOW_MIGRATE_TO;
    let password = values["password-file"] ? readSecretFile(values["password-file"], "password") : undefined;
    let stack: LocalStack | undefined;
    if (!to) {
      stack = await openLocalStack(process.cwd(), d, phase);
      cleanups.unshift(stack.close);
      to = stack.to;
      password = stack.password;
      if (!values["dry-run"]) {
        const restart = await stopMlflow(d, values.yes ? undefined : () => confirm("The MLflow server is running: stop it for the migration and start it again afterwards? [y/N] "), phase);
        if (restart) cleanups.unshift(restart);
      }
    }
    return await run(values, to, password, stack, json, progress, confirm, d);
  } catch (error) {
    throw systemFailure(error);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await cleanUp();
  }
}

type Values = ReturnType<typeof parseCli<typeof OPTIONS>>["values"];

async function run(
  values: Values,
  to: string,
  password: string | undefined,
  stack: LocalStack | undefined,
  json: boolean,
  progress: ReturnType<typeof progressPrinter>,
  ask: (q: string) => Promise<boolean>,
  d: ReturnType<typeof docker>,
): Promise<number> {

  let artifacts: ArtifactOptions | undefined;
  if (!values["no-artifacts"]) {
    artifacts = {
      dir: values.artifacts,
      root: values["artifact-root"],
      allowMissing: values["allow-missing-artifacts"],
      endpoint: values["s3-endpoint"] ?? stack?.s3.endpoint ?? process.env.MLFLOW_S3_ENDPOINT_URL,
      bucket: values.bucket ?? stack?.s3.bucket ?? process.env.MLFLOW_BUCKET ?? envFileValue("MLFLOW_BUCKET"),
      accessKeyId: stack && !values["s3-endpoint"] ? stack.s3.accessKeyId : process.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: values["s3-secret-file"]
        ? readSecretFile(values["s3-secret-file"], "S3 secret")
        : stack && !values["s3-endpoint"]
          ? stack.s3.secretAccessKey
          : process.env.AWS_SECRET_ACCESS_KEY,
      region: process.env.AWS_DEFAULT_REGION ?? process.env.AWS_REGION ?? "us-east-1",
    };
  }

  const onEvent = (e: MigrateEvent) => progress(e);
  const prepared: PreparedArtifacts | undefined = artifacts ? await prepareArtifacts(values.from!, artifacts, (m) => progress({ type: "phase", message: m })) : undefined;
  const artifactPlan = prepared?.plan ?? surveyArtifacts(values.from!);
  const confirm = async (plan: Plan) => {
    if (values.yes) return true;
    const extra = prepared?.plan.bucket ? `, upload ${prepared.plan.files} artifact files (${prepared.plan.bytes} bytes) to s3://${prepared.plan.bucket}` : "";
    return ask(`Copy ${plan.totalRows} rows from ${plan.source} into ${plan.target}${plan.replace ? " (REPLACING its data)" : ""}${extra}? [y/N] `);
  };
  let result;
  try {
    result = await migrate({
    from: values.from!,
    to,
    password,
    workers: values.workers === undefined ? undefined : workerCount(values.workers),
    upgradeSource: values["upgrade-source"] ? (revisions) => upgradeSourceCopy(values.from!, revisions, d, (m) => progress({ type: "phase", message: m })) : undefined,
    replace: values.replace,
    dryRun: values["dry-run"],
    locationRewrites: prepared?.rewrites,
    replaceInvalidText: values["replace-invalid-text"],
    sqliteReader: values["sqlite-reader"],
    keepWebhooksActive: values["keep-webhooks-active"],
    confirm,
    beforeCopy: prepared ? async () => void (await prepared.upload((m) => progress({ type: "phase", message: m }))) : undefined,
    beforeCommit: prepared ? async () => void (await prepared.verify((m) => progress({ type: "phase", message: m }))) : undefined,
    onEvent,
    });
  } finally {
    prepared?.close();
  }
  const artifactResult = prepared?.result();
  if (json) {
    process.stdout.write(JSON.stringify({ ...result, artifacts: { plan: artifactPlan, result: artifactResult ?? null } }, null, 2) + "\n");
  } else {
    process.stdout.write(formatSummary(result, artifactPlan, artifactResult) + "\n");
  }
  return 0;
}

await runCli("migrate", main);
