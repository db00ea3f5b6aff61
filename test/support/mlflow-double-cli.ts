// The MLflow API double as an `mlflow` command, for tests that run mlflow/docker-entrypoint.sh for real and let it
// exec "mlflow server ...": listens on --host/--port, refuses Host headers outside MLFLOW_SERVER_ALLOWED_HOSTS as
// MLflow does (/health exempt), and forwards artifacts to the --artifacts-destination bucket with the S3 settings
// of the environment (MLFLOW_S3_ENDPOINT_URL, AWS_*), as MLflow's --serve-artifacts does. SIGTERM stops it (exit 0).
// Run by test/support/paas.ts through `node --import tsx`.
import { startMlflowDouble, type S3Forward } from "./mlflow-double.ts";

const [command, ...args] = process.argv.slice(2);
if (command !== "server") {
  process.stderr.write(`mlflow double: only "mlflow server" is implemented, got ${JSON.stringify(command)}\n`);
  process.exit(2);
}
const option = (name: string) => {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
};

const env = process.env;
const destination = option("--artifacts-destination") ?? "";
const bucket = /^s3:\/\/([^/]+)\/?(.*)$/.exec(destination);
let s3: S3Forward | undefined;
if (bucket && env.MLFLOW_S3_ENDPOINT_URL && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
  s3 = {
    endpoint: env.MLFLOW_S3_ENDPOINT_URL,
    region: env.AWS_DEFAULT_REGION ?? "us-east-1",
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    bucket: bucket[1],
    prefix: bucket[2],
  };
}

const host = option("--host") ?? "127.0.0.1";
const double = await startMlflowDouble({ host, port: Number(option("--port") ?? 5000), s3 });
const allowed = env.MLFLOW_SERVER_ALLOWED_HOSTS?.split(",").map((entry) => entry.replace(/:\*$/, "").replace(/^\[|\]$/g, ""));
if (allowed) double.misbehave({ allowedHosts: [...new Set(allowed)] });
process.stderr.write(`mlflow double: listening on ${host}:${double.port}${s3 ? `, artifacts to s3://${s3.bucket}/` : ""}\n`);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    void double.stop().then(() => process.exit(0));
  });
}
