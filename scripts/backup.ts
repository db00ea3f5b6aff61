// npm run backup -- [--to DIR | s3://bucket/prefix] [--keep N] [--db postgresql://… --s3-endpoint URL --bucket NAME]
// The stack's database and every artifact object into one verified backup; see scripts/lib/backup/.
import { parseCli, runCli, UsageError } from "./lib/cli.ts";
import { docker } from "./lib/migrate/docker.ts";
import { runBackup } from "./lib/backup/backup.ts";
import { destination, locationEndpoint, lockStack, openEndpoints } from "./lib/backup/endpoints.ts";
import { formatBackupSummary, progressPrinter } from "./lib/backup/report.ts";

// The AWS SDK warns about Node < 22 on stderr (about its future releases, not this run): keep errors to one line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const HELP = `Usage: npm run backup -- [options]

Backs up the stack: the database (pg_dump custom format, one snapshot, row counts per table), then every object of
the artifact bucket, then a manifest with the sha256 of every part. Objects unchanged since the previous complete
backup of the same destination (same size and ETag) are not sent again. A backup that fails or is interrupted stays
marked INCOMPLETE and is never used or counted. Secrets (.env, secrets/) are NOT in the backup.

  --to DIR|s3://BUCKET/PREFIX   where backups live (default: backups/ here); each backup is a folder <UTC time>/
  --to-endpoint URL             S3 endpoint of an s3:// destination (keys: BACKUP_AWS_ACCESS_KEY_ID and
                                BACKUP_AWS_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY);
                                without --db, --s3-endpoint URL says the same (--to s3://… --s3-endpoint https://…)
  --keep N                      afterwards delete the oldest complete backups of the destination beyond N
  --db URL                      back up this PostgreSQL instead of the local stack (postgresql://user@host:port/db;
                                password from PGPASSWORD or --password-file); needs a local pg_dump not older than the server
  --password-file FILE          file holding the database password
  --s3-endpoint URL             with --db: S3 endpoint of the artifact bucket (default $MLFLOW_S3_ENDPOINT_URL);
                                without --db: the endpoint of the s3:// destination (as --to-endpoint)
  --bucket NAME                 with --db: the artifact bucket (default $MLFLOW_BUCKET, else MLFLOW_BUCKET from .env);
                                keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-secret-file)
  --s3-secret-file FILE         file holding the S3 secret key
  --mlflow-version V            MLflow version to record (default MLFLOW_VERSION from .env)
  --json                        print the result as JSON on stdout (progress stays on stderr)
  -h, --help                    this text

Without --db: the local stack (run from its directory, started). Credentials come from .env and secrets/; PostgreSQL
and MinIO are reached through a temporary forwarder container (as npm run migrate does), pg_dump runs inside the db
container. MLflow keeps running: the dump is one consistent snapshot.

One backup or restore at a time: per database (a PostgreSQL advisory lock), per backup folder (its .lock file) and,
for the local stack, per stack directory (.backup.lock, shared with restore and upgrade). A run that finds one held
stops at once and names the holder (pid, host, start); the lock of a run that was killed is taken over.`;

const OPTIONS = {
  to: { type: "string" },
  "to-endpoint": { type: "string" },
  keep: { type: "string" },
  db: { type: "string" },
  "password-file": { type: "string" },
  "s3-endpoint": { type: "string" },
  bucket: { type: "string" },
  "s3-secret-file": { type: "string" },
  "mlflow-version": { type: "string" },
  json: { type: "boolean" },
} as const;

async function main(): Promise<number> {
  const { values } = parseCli("backup", process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  let keep: number | undefined;
  if (values.keep !== undefined) {
    keep = Number(values.keep);
    if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`--keep must be a whole number of at least 1, got ${JSON.stringify(values.keep)}`);
  }
  const progress = progressPrinter(process.stderr, "backup");
  const dest = destination(values.to, locationEndpoint(values, values.to, values["to-endpoint"], "--to-endpoint"), process.cwd());
  await dest.store.probe(); // an unwritable or unreachable destination fails before anything starts
  const stackLock = values.db ? undefined : lockStack(process.cwd(), "a backup");
  let endpoints;
  try {
    endpoints = await openEndpoints(values, process.cwd(), docker(process.cwd()), progress.phase);
  } catch (error) {
    stackLock?.release();
    throw error;
  }
  // Ctrl-C or a kill: the backup stays marked INCOMPLETE (never used, never counted); the forwarder is stopped.
  const onSignal = (signal: NodeJS.Signals) => {
    progress.phase(`${signal}: stopping; this backup stays marked INCOMPLETE and is ignored from now on`);
    void endpoints.close().finally(() => {
      stackLock?.release();
      process.exit(130);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const result = await runBackup({ ...endpoints, store: dest.store, keep, onPhase: progress.phase, onObjects: progress.objects });
    if (values.json) {
      const { items: _items, ...objects } = result.manifest.objects;
      process.stdout.write(JSON.stringify({ ...result, manifest: { ...result.manifest, objects } }, null, 2) + "\n");
    } else process.stdout.write(formatBackupSummary(result) + "\n");
    return 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await endpoints.close();
    dest.close();
    stackLock?.release();
  }
}

await runCli("backup", main);
