// npm run move-objects -- --from-endpoint URL --to-endpoint URL [options]
// Every object of one S3 bucket into another (the old MinIO's artifacts into a new server); see scripts/lib/move-objects.ts.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCli, runCli, UsageError, UserError } from "./lib/cli.ts";
import { parseEnv } from "./lib/envfile.ts";
import { formatMoveSummary, moveObjects, type BucketLocation } from "./lib/move-objects.ts";
import { passwordFromFile, SECRET_FILES } from "./lib/secrets.ts";

// The AWS SDK warns about Node < 22 on stderr (about its future releases, not this run): keep errors to one line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const HELP = `Usage: npm run move-objects -- --from-endpoint URL --to-endpoint URL [options]

Copies every object of the source bucket into the target bucket (another S3 server, or another bucket), then checks
the target: every object there with the same size, and the same object count and bytes. Re-runnable: objects already
copied (same size and ETag) are skipped. Objects only the target has are left alone; the source is never changed.

Only needed when the new S3 server cannot open the old MinIO volume in place (README: Upgrading from MinIO). Publish
both servers on loopback while it runs (compose.override.yml), or run it where both are reachable.

  --from-endpoint URL     the old server, e.g. http://127.0.0.1:9010
  --from-bucket NAME      its bucket (default MLFLOW_BUCKET from .env)
  --from-access-key KEY   its access key (default MINIO_ROOT_USER from .env)
  --from-secret-file FILE file holding its secret key (default: FROM_AWS_SECRET_ACCESS_KEY, else secrets/minio_root_password)
  --to-endpoint URL       the new server, e.g. http://127.0.0.1:9000
  --to-bucket NAME        its bucket (default: the source bucket's name); must exist (createbuckets makes it)
  --to-access-key KEY     its access key (default MINIO_ROOT_USER from .env)
  --to-secret-file FILE   file holding its secret key (default: TO_AWS_SECRET_ACCESS_KEY, else secrets/minio_root_password)
  --concurrency N         objects copied at once (default 4)
  --dry-run               list and compare only; copy nothing
  --json                  print the result as JSON on stdout (progress stays on stderr)
  -h, --help              this text

Exit 0 when the target holds every object (verified), 1 otherwise. Keys are read from files or the environment,
never from the command line.`;

const OPTIONS = {
  "from-endpoint": { type: "string" },
  "from-bucket": { type: "string" },
  "from-access-key": { type: "string" },
  "from-secret-file": { type: "string" },
  "to-endpoint": { type: "string" },
  "to-bucket": { type: "string" },
  "to-access-key": { type: "string" },
  "to-secret-file": { type: "string" },
  concurrency: { type: "string" },
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
} as const;

function endpointOption(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`${flag} is required (see: npm run move-objects -- --help)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${flag} must be a URL like http://127.0.0.1:9000, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`${flag} must start with http:// or https://, got ${JSON.stringify(value)}`);
  return value;
}

function secret(file: string | undefined, variable: string, dir: string, flag: string): string {
  if (file !== undefined) {
    if (!existsSync(file)) throw new UserError(`${flag} ${file} does not exist`);
    const value = passwordFromFile(readFileSync(file, "utf8"));
    if (!value) throw new UserError(`${flag} ${file} is empty`);
    return value;
  }
  const fromEnv = process.env[variable];
  if (fromEnv) return fromEnv;
  const stack = join(dir, SECRET_FILES.minio);
  if (existsSync(stack)) return passwordFromFile(readFileSync(stack, "utf8"));
  throw new UserError(`no secret key: give ${flag}, set ${variable}, or run from the stack's folder (${SECRET_FILES.minio})`);
}

async function main(): Promise<number> {
  const { values } = parseCli("move-objects", process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  const dir = process.cwd();
  const env = existsSync(join(dir, ".env")) ? parseEnv(readFileSync(join(dir, ".env"), "utf8")) : {};
  let concurrency = 4;
  if (values.concurrency !== undefined) {
    concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency must be a whole number from 1 to 64, got ${JSON.stringify(values.concurrency)}`);
  }
  const fromBucket = values["from-bucket"] ?? env.MLFLOW_BUCKET;
  if (!fromBucket) throw new UsageError("--from-bucket is required (or run from the stack's folder: MLFLOW_BUCKET in .env)");
  const accessKey = (given: string | undefined, flag: string) => {
    const key = given ?? env.MINIO_ROOT_USER;
    if (!key) throw new UsageError(`${flag} is required (or run from the stack's folder: MINIO_ROOT_USER in .env)`);
    return key;
  };
  const from: BucketLocation = {
    endpoint: endpointOption(values["from-endpoint"], "--from-endpoint"),
    bucket: fromBucket,
    accessKeyId: accessKey(values["from-access-key"], "--from-access-key"),
    secretAccessKey: secret(values["from-secret-file"], "FROM_AWS_SECRET_ACCESS_KEY", dir, "--from-secret-file"),
  };
  const to: BucketLocation = {
    endpoint: endpointOption(values["to-endpoint"], "--to-endpoint"),
    bucket: values["to-bucket"] ?? fromBucket,
    accessKeyId: accessKey(values["to-access-key"], "--to-access-key"),
    secretAccessKey: secret(values["to-secret-file"], "TO_AWS_SECRET_ACCESS_KEY", dir, "--to-secret-file"),
  };
  process.stderr.write(`move-objects: s3://${from.bucket} at ${from.endpoint} -> s3://${to.bucket} at ${to.endpoint}${values["dry-run"] ? " (dry run)" : ""}\n`);
  let last = 0;
  const result = await moveObjects({
    from,
    to,
    concurrency,
    dryRun: values["dry-run"],
    onProgress: (p) => {
      if (Date.now() - last < 1000 && p.done !== p.total) return;
      last = Date.now();
      process.stderr.write(`move-objects: ${p.done}/${p.total} objects (${p.copied} copied, ${p.skipped} already there, ${(p.bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
    },
  });
  process.stdout.write(values.json ? JSON.stringify(result, null, 2) + "\n" : formatMoveSummary(result) + "\n");
  return result.verified || result.dryRun ? 0 : 1;
}

await runCli("move-objects", main);
