// npm run restore -- --from backups/2026-12-01T03-00-00Z [--replace] [--db postgresql://… --s3-endpoint URL --bucket NAME]
// Puts a backup made by npm run backup back, verified; see scripts/lib/backup/restore.ts.
import { confirm, parseCli, runCli, UsageError } from "./lib/cli.ts";
import { check, docker } from "./lib/migrate/docker.ts";
import { stopMlflow } from "./lib/migrate/local-stack.ts";
import { locationEndpoint, lockStack, openEndpoints, source } from "./lib/backup/endpoints.ts";
import { formatRestoreSummary, progressPrinter } from "./lib/backup/report.ts";
import { runRestore } from "./lib/backup/restore.ts";
import { smokeStack } from "./lib/backup/smoke.ts";

// The AWS SDK warns about Node < 22 on stderr (about its future releases, not this run): keep errors to one line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const HELP = `Usage: npm run restore -- --from BACKUP [options]

Restores a backup made by npm run backup. Before anything is written it checks the manifest (and its sha256), that
every part is there with its size, the PostgreSQL tools and the MLflow version (a backup from a NEWER MLflow is
refused; one from an older MLflow is restored and then needs docker compose run --rm mlflow db-upgrade), and that the
target holds no data. Then it restores the objects (resumable: run it again after an interruption) and the database
in one transaction, and compares row counts and object count/bytes with the manifest. Secrets are not in a backup:
the target stack keeps its own.

  --from DIR|s3://BUCKET/PREFIX/NAME   the backup (a folder backups/<UTC time>, or its s3:// address)
  --from-endpoint URL                  S3 endpoint of an s3:// backup (keys as for npm run backup --to s3://);
                                       without --db, --s3-endpoint URL says the same
  --replace                            overwrite a target that holds data: its database is replaced and bucket
                                       objects that are not in the backup are deleted
  --db URL                             restore into this PostgreSQL instead of the local stack (password from
                                       PGPASSWORD or --password-file; needs local pg_restore and psql)
  --password-file FILE                 file holding the database password
  --s3-endpoint URL, --bucket NAME     with --db: the artifact bucket (keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                                       or --s3-secret-file)
  --s3-secret-file FILE                file holding the S3 secret key
  --mlflow-version V                   the target's MLflow version (default MLFLOW_VERSION from .env)
  --no-smoke                           do not run the smoke checks afterwards (local stack only)
  --yes                                do not ask before stopping MLflow
  --json                               print the result as JSON on stdout (progress stays on stderr)
  -h, --help                           this text

Without --db: the local stack of this directory (started). MLflow is stopped for the restore (asked first, unless
--yes) and started again afterwards, then npm run smoke's checks run through the proxy.

The objects and the database are restored at the same time; each part's sha256 is checked as it streams, and the
database transaction commits only after every object is back and every checksum matched (a damaged backup leaves
the database as it was). Locks as for npm run backup: the database's, the backup folder's (shared: a concurrent
--keep cannot delete the backup being restored) and the stack's.`;

const OPTIONS = {
  from: { type: "string" },
  "from-endpoint": { type: "string" },
  replace: { type: "boolean" },
  db: { type: "string" },
  "password-file": { type: "string" },
  "s3-endpoint": { type: "string" },
  bucket: { type: "string" },
  "s3-secret-file": { type: "string" },
  "mlflow-version": { type: "string" },
  "no-smoke": { type: "boolean" },
  yes: { type: "boolean" },
  json: { type: "boolean" },
} as const;

async function main(): Promise<number> {
  const { values } = parseCli("restore", process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  if (!values.from) throw new UsageError("--from BACKUP is required (e.g. --from backups/2026-12-01T03-00-00Z); see --help");
  const interactive = process.stdin.isTTY && process.stderr.isTTY;
  if (!values.db && !values.yes && !interactive) throw new UsageError("not on a terminal: pass --yes to stop MLflow for the restore without asking");
  const progress = progressPrinter(process.stderr, "restore");
  const from = source(values.from, locationEndpoint(values, values.from, values["from-endpoint"], "--from-endpoint"));
  const d = docker(process.cwd());
  const stackLock = values.db ? undefined : lockStack(process.cwd(), "a restore");
  let endpoints;
  try {
    endpoints = await openEndpoints(values, process.cwd(), d, progress.phase);
  } catch (error) {
    stackLock?.release();
    throw error;
  }
  let restart: (() => Promise<void>) | undefined;
  // Ctrl-C or a kill: psql's transaction is rolled back when it dies; MLflow must not stay stopped. Objects already
  // put back stay: the same command resumes.
  const onSignal = (signal: NodeJS.Signals) => {
    progress.phase(`${signal}: stopping; the database transaction is rolled back; run the same command again to resume`);
    void (async () => {
      if (restart) await restart().catch(() => {});
      await endpoints.close();
    })().finally(() => {
      stackLock?.release();
      process.exit(130);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const result = await runRestore({
      ...endpoints,
      store: from.store,
      name: from.name,
      targetVersion: endpoints.mlflowVersion,
      replace: !!values.replace,
      beforeWrite: endpoints.local
        ? async () => void (restart = await stopMlflow(d, values.yes ? undefined : () => confirm("The MLflow server is running: stop it for the restore and start it again afterwards? [y/N] "), progress.phase))
        : undefined,
      onPhase: progress.phase,
      onObjects: progress.objects,
    });
    let smoke: { ok: boolean; summary: string } | undefined;
    if (restart && !result.needsUpgrade) {
      await restart();
      restart = undefined;
      // `docker compose start` returns before MLflow is healthy: wait for it like the user would.
      check(await d.compose(["up", "-d", "--wait", "--no-deps", "mlflow"]), "waiting for MLflow to be healthy after the restore", "see docker compose logs mlflow");
      if (!values["no-smoke"]) smoke = await smokeStack(process.cwd(), endpoints.mlflowVersion ?? undefined, (l) => process.stderr.write(l + "\n"));
    } else if (restart) {
      restart = undefined; // MLflow refuses an out-of-date schema: it stays stopped until db-upgrade ran
      progress.phase("MLflow stays stopped: the restored schema is older than the stack's (see NEXT below)");
    }
    if (values.json) process.stdout.write(JSON.stringify({ ...result, smoke: smoke ?? null }, null, 2) + "\n");
    else process.stdout.write(formatRestoreSummary(result) + (smoke ? `\n  smoke      ${smoke.summary}` : "") + "\n");
    return smoke && !smoke.ok ? 1 : 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // A failed restore leaves MLflow as it found it: running on the untouched (or fully restored) data.
    if (restart) await restart().catch((e) => progress.phase(`could not start MLflow again: ${e instanceof Error ? e.message : e}`));
    await endpoints.close();
    from.close();
    stackLock?.release();
  }
}

await runCli("restore", main);
