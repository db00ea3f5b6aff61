// `mlflow` of the mlflow base stand-in image: `mlflow server` with the flags docker-entrypoint.sh passes, serving the
// MLflow API double (test/support/mlflow-double.ts) on --host:--port. Like MLflow it really uses what it is given:
//   - the backend store (MLFLOW_BACKEND_STORE_URI or --backend-store-uri, postgresql+psycopg2:// only, and only when
//     psycopg2-binary was pip-installed): it connects at start (exit 1 if it cannot), creates MLflow's schema in an
//     empty database (the recorded 3.11 schema, so `npm run migrate` finds what MLflow would make), keeps the double's
//     state there (it survives restarts), and answers 500 on API calls while the database is unreachable;
//   - the artifact store (--artifacts-destination s3://BUCKET/, MLFLOW_S3_ENDPOINT_URL, AWS_* keys, boto3 installed):
//     it checks the bucket at start (exit 1 if it cannot) and writes every artifact there;
//   - MLFLOW_SERVER_ALLOWED_HOSTS: other Host headers get MLflow's recorded 403 (/health is exempt).
// Unknown flags are refused, as click refuses them.
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { existsSync, readFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import pg from "pg";
import { s3Client } from "../../../../scripts/lib/s3-client.ts";
import { startMlflowDouble } from "../../../support/mlflow-double.ts";

const STAND_IN = "/usr/local/lib/stand-in";
function fail(message: string, code = 1): never {
  process.stderr.write(`mlflow (stand-in): error: ${message}\n`);
  process.exit(code);
}
const installed = (pkg: string) => existsSync(`${STAND_IN}/site-packages/${pkg}`);

const [command, ...args] = process.argv.slice(2);
if (command !== "server") fail(`the stand-in implements only \`mlflow server\`, got: mlflow ${process.argv.slice(2).join(" ")}`, 2);
const VALUE_FLAGS = ["--host", "--port", "--artifacts-destination", "--default-artifact-root", "--workers", "--uvicorn-opts", "--backend-store-uri", "--allowed-hosts"];
const BOOLEAN_FLAGS = ["--serve-artifacts"];
const flags: Record<string, string | true> = {};
for (let i = 0; i < args.length; i++) {
  const [name, inline] = args[i].split(/=(.*)/s, 2);
  if (BOOLEAN_FLAGS.includes(name)) flags[name] = true;
  else if (VALUE_FLAGS.includes(name)) {
    const value = inline ?? args[++i];
    if (value === undefined) fail(`Option '${name}' requires an argument.`, 2);
    flags[name] = value;
  } else fail(`No such option: ${name}`, 2);
}
const host = String(flags["--host"] ?? "127.0.0.1");
const port = Number(flags["--port"] ?? 5000);
const workers = Number(flags["--workers"] ?? 4);
if (!Number.isInteger(workers) || workers < 1) fail(`Invalid value for '--workers': ${flags["--workers"]}`, 2);
const destination = String(flags["--artifacts-destination"] ?? "./mlartifacts");
if (flags["--serve-artifacts"] !== true) fail("this stack serves artifacts through MLflow: --serve-artifacts missing");
if (flags["--default-artifact-root"] !== "mlflow-artifacts:/") fail(`--default-artifact-root must be mlflow-artifacts:/ with --serve-artifacts, got ${flags["--default-artifact-root"]}`);

const storeUri = String(flags["--backend-store-uri"] ?? process.env.MLFLOW_BACKEND_STORE_URI ?? "");
const store = /^postgresql\+psycopg2:\/\/([^:@/]*):([^@/]*)@([^:/]+):(\d+)\/(.+)$/.exec(storeUri);
if (!store) fail(`backend store must be postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB in this stack, got ${storeUri.replace(/:[^:@/]*@/, ":***@") || "nothing"}`);
if (!installed("psycopg2-binary")) fail("No module named 'psycopg2' (pip install psycopg2-binary)");
const bucketMatch = /^s3:\/\/([^/]+)\/?(.*)$/.exec(destination);
if (!bucketMatch) fail(`--artifacts-destination must be s3://BUCKET/ in this stack, got ${destination}`);
if (!installed("boto3")) fail("No module named 'boto3' (pip install boto3)");

const db = new pg.Pool({
  user: decodeURIComponent(store[1]),
  password: decodeURIComponent(store[2]),
  host: store[3],
  port: Number(store[4]),
  database: decodeURIComponent(store[5]),
  max: 4,
  connectionTimeoutMillis: 5000,
});
db.on("error", () => {}); // a dropped idle connection: the next query reports it
// MLflow retries its first connection (mlflow/store/db/utils.py create_sqlalchemy_engine_with_retry), which matters
// after `docker compose restart`: the database restarts at the same time. About a minute here.
for (let attempt = 1; ; attempt++) {
  try {
    await db.query("select 1");
    break;
  } catch (error) {
    if (attempt >= 30) fail(`cannot connect to the backend store at ${store[3]}:${store[4]}/${store[5]}: ${(error as Error).message}`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
try {
  const has = await db.query<{ t: string | null }>("select to_regclass('public.alembic_version')::text as t");
  if (!has.rows[0].t) {
    process.stderr.write("mlflow (stand-in): creating MLflow's schema in an empty database\n");
    const sql = readFileSync(`${STAND_IN}/postgres-schema.sql`, "utf8")
      .split("\n")
      .filter((line) => !line.startsWith("\\"))
      .join("\n");
    const head = /alembic_head=(\w+)/.exec(readFileSync(`${STAND_IN}/alembic-head.txt`, "utf8"))![1];
    const client = await db.connect();
    try {
      await client.query("begin");
      await client.query(sql);
      await client.query("select pg_catalog.set_config('search_path', 'public', false)");
      await client.query("insert into public.alembic_version values ($1)", [head]);
      await client.query("insert into public.workspaces (name, description) values ('default', 'Default workspace for legacy resources')");
      await client.query(
        "insert into public.experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) values (0, 'Default', 'mlflow-artifacts:/0', 'active', $1, $1)",
        [Date.now()],
      );
      await client.query("commit");
    } finally {
      client.release();
    }
  }
  // In a schema of its own: `npm run migrate` looks at MLflow's schema (public) and must find only MLflow's tables.
  await db.query("create schema if not exists stand_in; create table if not exists stand_in.double_state (id int primary key, state text not null)");
} catch (error) {
  fail(`cannot use the backend store at ${store[3]}:${store[4]}/${store[5]}: ${(error as Error).message}`);
}

const s3 = {
  endpoint: process.env.MLFLOW_S3_ENDPOINT_URL ?? "https://s3.amazonaws.com",
  region: process.env.AWS_DEFAULT_REGION ?? "us-east-1",
  accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "",
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "",
  bucket: bucketMatch[1],
  prefix: bucketMatch[2].replace(/\/$/, ""),
};
try {
  const client = s3Client(s3, 1);
  await client.send(new HeadBucketCommand({ Bucket: s3.bucket }));
  client.destroy();
} catch (error) {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  fail(`cannot use the artifact store s3://${s3.bucket}/ at ${s3.endpoint}: ${e.name ?? String(error)} (${e.$metadata?.httpStatusCode ?? "no answer"})`);
}

const version = process.env.MLFLOW_STAND_IN_VERSION;
const double = await startMlflowDouble({ s3, ...(version ? { version } : {}) });
const allowed = (process.env.MLFLOW_SERVER_ALLOWED_HOSTS ?? flags["--allowed-hosts"] ?? "localhost")
  .toString()
  .split(",")
  .map((h) => h.trim().replace(/:\*$/, ""))
  .filter(Boolean);
double.misbehave({ allowedHosts: [...new Set(allowed)] });

// The double's state (Maps inside) as JSON in the database.
const replacer = (_key: string, value: unknown) => (value instanceof Map ? { $map: [...value] } : value);
const reviver = (_key: string, value: unknown) =>
  value && typeof value === "object" && "$map" in value ? new Map((value as { $map: [unknown, unknown][] }).$map) : value;
const state = double.state as unknown as Record<string, Map<unknown, unknown>>;
const saved = await db.query<{ state: string }>("select state from stand_in.double_state where id = 1");
if (saved.rows.length) {
  const restored = JSON.parse(saved.rows[0].state, reviver) as Record<string, Map<unknown, unknown>>;
  for (const [key, map] of Object.entries(restored)) {
    state[key].clear();
    for (const [k, v] of map) state[key].set(k, v);
  }
}
if (!state.experiments.has("0")) {
  const now = Date.now();
  state.experiments.set("0", { experiment_id: "0", name: "Default", artifact_location: "mlflow-artifacts:/0", lifecycle_stage: "active", creation_time: now, last_update_time: now, tags: [] });
}
// Experiments (and their tags) also go to MLflow's own tables, as MLflow keeps them: `npm run migrate` then sees what
// it would see with MLflow, e.g. the deleted experiments smoke leaves. An id already used by another experiment (one
// migrate brought in) is left alone.
async function mirrorExperiments() {
  for (const [id, e] of state.experiments as Map<string, { name: string; artifact_location: string; lifecycle_stage: string; creation_time: number; last_update_time: number; tags: { key: string; value: string }[] }>) {
    if (id === "0") continue;
    const written = await db.query(
      `insert into public.experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
         values ($1, $2, $3, $4, $5, $6)
       on conflict (experiment_id) do update set lifecycle_stage = excluded.lifecycle_stage, last_update_time = excluded.last_update_time
         where public.experiments.name = excluded.name`,
      [Number(id), e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time],
    );
    if (!written.rowCount) continue;
    for (const tag of e.tags ?? [])
      await db.query("insert into public.experiment_tags (key, value, experiment_id) values ($1, $2, $3) on conflict do nothing", [tag.key, tag.value, Number(id)]);
  }
}
let saving = Promise.resolve();
const save = () =>
  (saving = saving.then(async () => {
    await db.query("insert into stand_in.double_state values (1, $1) on conflict (id) do update set state = excluded.state", [JSON.stringify(state, replacer)]);
    await mirrorExperiments();
  }));
await save();

const server = createServer(async (req, res) => {
  if (req.url !== "/health") {
    try {
      await db.query("select 1");
    } catch (error) {
      req.resume();
      const body = JSON.stringify({ error_code: "INTERNAL_ERROR", message: `(psycopg2.OperationalError) ${(error as Error).message}` });
      res.writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
      return;
    }
  }
  const upstream = httpRequest({ host: "127.0.0.1", port: double.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
    answer.on("end", () => {
      if (req.method !== "GET" && req.method !== "HEAD") save().catch((error) => process.stderr.write(`mlflow (stand-in): saving state: ${error.message}\n`));
    });
  });
  upstream.on("error", () => res.destroy());
  req.pipe(upstream);
});
server.keepAliveTimeout = 150_000;
server.listen(port, host, () => process.stdout.write(`mlflow (stand-in): listening on ${host}:${port} (${workers} workers requested, one process here)\n`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
