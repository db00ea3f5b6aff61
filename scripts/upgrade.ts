// npm run upgrade -- --to 3.19.0 [--dry-run] [--no-backup] [--backup-to DIR|s3://…] [--yes]
// Upgrades the local stack's MLflow with a backup first and a rollback on failure; see scripts/lib/upgrade/upgrade.ts.
import { pipeline } from "node:stream";
import { confirm, parseCli, runCli, UsageError, UserError } from "./lib/cli.ts";
import { docker } from "./lib/migrate/docker.ts";
import { stackSettings } from "./lib/migrate/local-stack.ts";
import { runBackup } from "./lib/backup/backup.ts";
import { containerTools } from "./lib/backup/database.ts";
import { destination, envFile, lockStack, openEndpoints, type Endpoints } from "./lib/backup/endpoints.ts";
import { hashing, DUMP } from "./lib/backup/store.ts";
import { progressPrinter } from "./lib/backup/report.ts";
import { smokeStack } from "./lib/backup/smoke.ts";
import { checkVersions, plan, runUpgrade } from "./lib/upgrade/upgrade.ts";
import { missingSecretFiles } from "./lib/stack-secrets.ts";

// The AWS SDK warns about Node < 22 on stderr (about its future releases, not this run): keep errors to one line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const HELP = `Usage: npm run upgrade -- --to VERSION [options]

Upgrades the local stack's MLflow (run from its directory, stack started): builds the new image, stops MLflow, backs
up the database and artifacts, runs the schema upgrade, starts MLflow and waits until it is healthy, runs the smoke
checks, and only then writes MLFLOW_VERSION to .env. If anything fails after the schema step, it restores the
database from that backup and starts the old MLflow again. A downgrade is refused.

  --to VERSION        the MLflow version to run (e.g. 3.19.0)
  --dry-run           print the plan; change nothing
  --backup-to DEST    where the backup goes (default backups/ here; s3://bucket/prefix as for npm run backup)
  --no-backup         skip the backup (NOT recommended: a failed upgrade then cannot be rolled back)
  --yes               do not ask for confirmation
  --json              print the result as JSON on stdout (progress stays on stderr)
  -h, --help          this text

Ctrl-C (or SIGTERM) stops it after the step under way, exit code 130: before the schema upgrade MLflow is started
again as it was (nothing upgraded); after it, the rollback above runs first. A second Ctrl-C does not cut that short.`;

const OPTIONS = {
  to: { type: "string" },
  "dry-run": { type: "boolean" },
  "backup-to": { type: "string" },
  "no-backup": { type: "boolean" },
  yes: { type: "boolean" },
  json: { type: "boolean" },
} as const;

async function main(): Promise<number> {
  const { values } = parseCli("upgrade", process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  if (!values.to) throw new UsageError("--to VERSION is required (e.g. --to 3.19.0); see --help");
  const dir = process.cwd();
  const from = envFile(dir).MLFLOW_VERSION;
  checkVersions(from, values.to);
  const missing = missingSecretFiles(dir);
  if (missing.length) throw new UserError(`${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing (a newer stack mounts ${missing.length > 1 ? "them" : "it"}): run npm run bootstrap first — it adds new secrets and changes nothing that exists`);
  const withBackup = !values["no-backup"];
  const backupTo = values["backup-to"] ?? "backups/";
  const steps = plan(from!, values.to, withBackup, backupTo);
  if (values["dry-run"]) {
    if (values.json) process.stdout.write(JSON.stringify({ from, to: values.to, dryRun: true, steps }, null, 2) + "\n");
    else process.stdout.write(`Upgrade plan: MLflow ${from} -> ${values.to} (dry run: nothing was changed)\n${steps.map((s, i) => `  ${i + 1}. ${s}`).join("\n")}\n`);
    return 0;
  }
  const progress = progressPrinter(process.stderr, "upgrade");
  if (!withBackup) process.stderr.write("upgrade: WARNING: --no-backup: a failed upgrade cannot be rolled back\n");
  if (!values.yes) {
    if (!(process.stdin.isTTY && process.stderr.isTTY)) throw new UsageError("not on a terminal: pass --yes to upgrade without confirmation");
    if (!(await confirm(`Upgrade MLflow ${from} -> ${values.to}? MLflow is down for a few minutes. [y/N] `))) throw new UserError("cancelled; nothing was changed");
  }
  const settings = stackSettings(dir);
  const stackLock = lockStack(dir, "an upgrade");
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return progress.phase(`${signal}: still putting the stack back as it was — please wait`);
    progress.phase(`${signal}: stopping after the step under way; the stack is put back as it was`);
    controller.abort(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let backupEndpoints: Endpoints | undefined;
  const dockerFor = (version: string) => docker(dir, "docker", { MLFLOW_VERSION: version });

  const backup = async () => {
    const dest = destination(values["backup-to"], undefined, dir);
    const endpoints = await openEndpoints({}, dir, dockerFor(from!), progress.phase);
    backupEndpoints = endpoints;
    try {
      const result = await runBackup({ ...endpoints, store: dest.store, onPhase: progress.phase, onObjects: progress.objects });
      const { store } = dest;
      return {
        where: `${result.where}/${result.name}`,
        restoreDatabase: async () => {
          // The dump was written minutes ago; its checksum is checked while it streams, and the transaction commits
          // only if it matched.
          progress.phase(`restoring the database from ${result.where}/${result.name}`);
          const h = hashing();
          const input = pipeline(await store.read(result.name, DUMP), h, () => {});
          await containerTools(dir, settings.user, settings.db).restore(input, async () => {
            if (h.result().sha256 !== result.manifest.database.sha256) throw new UserError(`the backup's database dump no longer matches its checksum`);
          });
        },
      };
    } finally {
      backupEndpoints = undefined;
      await endpoints.close();
    }
  };

  let result;
  try {
    result = await runUpgrade({
      dir,
      from: from!,
      to: values.to,
      dockerFor,
      backup: withBackup ? backup : undefined,
      smoke: (version) => smokeStack(dir, version, (l) => process.stderr.write(l + "\n")),
      onPhase: progress.phase,
      signal: controller.signal,
    });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    stackLock.release();
    if (controller.signal.aborted) {
      // A backup cut short may still be running: stop its forwarder, and do not wait for it.
      await (backupEndpoints as Endpoints | undefined)?.close().catch(() => {});
      setTimeout(() => process.exit(), 200).unref();
    }
  }
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else
    process.stdout.write(
      `Upgrade complete: MLflow ${result.from} -> ${result.to} (${result.seconds.toFixed(1)} s)\n  backup   ${result.backup ?? "none (--no-backup)"}\n  smoke    ${result.smoke}\n  .env     MLFLOW_VERSION=${result.to}\n`,
    );
  return 0;
}

await runCli("upgrade", main);
