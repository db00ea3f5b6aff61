// npm run smoke — proves a deployed MLflow stack works end to end through its proxy, and says what to fix.
import { parseCli, runCli } from "./lib/cli.ts";
import { runSmoke } from "./lib/smoke/checks.ts";
import { resolveSettings, type SmokeFlags } from "./lib/smoke/config.ts";
import { formatHeader, formatResult, formatSummary, toJson } from "./lib/smoke/report.ts";

const HELP = `Usage: npm run smoke -- [options]

Logs a run, its artifacts and a registered model through the proxy, the way MLflow clients do, checks
everything reads back exactly, then deletes what it created. Exit 0 only when every check passed.

Target (first found wins):
  --url URL             MLflow behind its proxy   (else MLFLOW_TRACKING_URI, else from .env:
                        http://localhost:PROXY_PORT, or https://DOMAIN when DOMAIN is not localhost)
  --user NAME           proxy user                (else MLFLOW_TRACKING_USERNAME, else mlflow)
  --password-file FILE  the user's password       (else MLFLOW_TRACKING_PASSWORD, else secrets/proxy_password.NAME)
Options:
  --large SIZE          also stream SIZE bytes up and down (e.g. 2GiB) to test body limits and timeouts
  --s3-endpoint URL     check the artifact landed in the bucket (MinIO is not published: tunnel or publish it);
                        credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else MINIO_ROOT_USER + secrets/minio_root_password
  --s3-bucket NAME      bucket (default MLFLOW_BUCKET from .env, else mlflow)
  --s3-prefix PREFIX    key prefix of MLflow's --artifacts-destination in the bucket (default none)
  --timeout DURATION    give up on a request idle this long (default 30s; e.g. 10, 10s, 500ms); an upload gets
                        1 s more per 4 MiB, as MLflow copies it to the bucket before answering
  --keep                leave the test experiment and model in place
  --json                print the report as JSON on stdout
  -h, --help            this text`;

// The AWS SDK (used for the bucket check) warns about Node < 22 on stderr in the middle of the report; the
// warning is about its future releases, not about this run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

await runCli("smoke", async () => {
  const { values } = parseCli("smoke", process.argv.slice(2), {
    url: { type: "string" },
    user: { type: "string" },
    "password-file": { type: "string" },
    large: { type: "string" },
    "s3-endpoint": { type: "string" },
    "s3-bucket": { type: "string" },
    "s3-prefix": { type: "string" },
    timeout: { type: "string" },
    keep: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const flags = values as SmokeFlags;
  const settings = resolveSettings(flags, process.env, process.cwd());
  // With --json, stdout carries only the document; progress goes to stderr either way.
  const log = (line: string) => (flags.json ? process.stderr : process.stdout).write(`${line}\n`);
  log(formatHeader(settings.url, settings.username));
  // The first Ctrl-C stops the checks and still cleans up; a second one ends the process at once.
  const interrupt = new AbortController();
  const shownAdvice = new Set<string>();
  process.once("SIGINT", () => {
    process.stderr.write("smoke: interrupted: cleaning up (Ctrl-C again to quit at once)\n");
    interrupt.abort();
  });
  const report = await runSmoke(settings, {
    onResult: (result) => log(formatResult(result, shownAdvice)),
    onProgress: (line) => process.stderr.write(`  … ${line}\n`),
    signal: interrupt.signal,
  });
  log(formatSummary(report));
  if (flags.json) process.stdout.write(`${toJson(report)}\n`);
  return report.ok ? 0 : 1;
});
