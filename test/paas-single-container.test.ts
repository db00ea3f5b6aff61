// The single-container image's process tree, natively: paas/supervisor.py runs mlflow/docker-entrypoint.sh (which
// execs `mlflow server`, here the MLflow double) and caddy/docker-entrypoint.sh (our Caddyfile), configured by
// environment variables only, as Heroku/Render/Fly.io/Cloud Run would set them. Artifacts go to a real S3 server.
// Then `npm run smoke` (the CLI) against it, SIGTERM, the death of either process, and the refusals.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { cmdline, environOf, pythonExecutable, startSingleContainer, type Running } from "./support/paas.ts";
import { basicAuth, httpRequest } from "./support/proxies.ts";
import { startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const caddy = requireBinary("caddy", "caddy");
const python = requireBinary("python3", "python3") ? pythonExecutable() : undefined;

const ROOT = resolve(import.meta.dirname, "..");
const USER = "mlflow";
const PASSWORD = "single-Container-pa55word!";
const DB_PASSWORD = "db-Pa55:w/rd@heroku";
const BUCKET = "mlflow-paas";

/** What a platform sets: a database URL (never connected to: the double has no database), the bucket, the login. */
const platformEnv = (s3: S3Server, extra: Record<string, string> = {}): Record<string, string> => ({
  DATABASE_URL: `postgres://u1:${encodeURIComponent(DB_PASSWORD)}@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d1?sslmode=require`,
  MLFLOW_BUCKET: BUCKET,
  MLFLOW_S3_ENDPOINT_URL: s3.endpoint,
  AWS_ACCESS_KEY_ID: s3.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  AUTH_USERNAME: USER,
  AUTH_PASSWORD: PASSWORD,
  ...extra,
});

/** The supervisor's two children: the process running the double (mlflow) and caddy. */
function children(container: Running): { mlflow: number; proxy: number } {
  const pids = container.descendants();
  const mlflow = pids.find((pid) => cmdline(pid).includes("mlflow-double-cli.ts"));
  const proxy = pids.find((pid) => /caddy run/.test(cmdline(pid)));
  if (!mlflow || !proxy) throw new Error(`children not found among ${pids.map((p) => `${p}: ${cmdline(p)}`).join("; ")}`);
  return { mlflow, proxy };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!caddy || !python)("single container (paas/supervisor.py) from environment variables only", () => {
  let s3: S3Server;
  let container: Running;
  const started: Running[] = [];
  const start = async (env: Record<string, string>, wait = true) => {
    const running = await startSingleContainer({ env, wait });
    started.push(running);
    return running;
  };

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
    container = await start(platformEnv(s3));
  }, 60_000);
  afterAll(async () => {
    for (const running of started) await running.stop();
    await s3?.stop();
  });

  it("answers on $PORT: /health open, everything else only with the login", async () => {
    expect((await httpRequest(container.url, "/health")).status).toBe(200);
    expect((await httpRequest(container.url, "/api/2.0/mlflow/experiments/search?max_results=1")).status).toBe(401);
    const api = await httpRequest(container.url, "/api/2.0/mlflow/experiments/search?max_results=1", {
      headers: { authorization: basicAuth(USER, PASSWORD), host: `127.0.0.1:${container.port}` },
    });
    expect(api.status).toBe(200);
  });

  it("prefixes every line with the process it came from, and prints no secret", () => {
    const lines = container.output().trimEnd().split("\n");
    expect(lines.every((line) => /^(supervisor|mlflow|proxy) +\| /.test(line)), lines.join("\n")).toBe(true);
    expect(lines.some((line) => line.startsWith("mlflow | mlflow-entrypoint: backend store (from DATABASE_URL): postgresql+psycopg2://u1:***@"))).toBe(true);
    expect(lines.some((line) => line.startsWith("proxy  | proxy-entrypoint: user mlflow from AUTH_USERNAME/AUTH_PASSWORD"))).toBe(true);
    for (const secret of [PASSWORD, DB_PASSWORD, encodeURIComponent(DB_PASSWORD)]) expect(container.output()).not.toContain(secret);
  });

  it("keeps MLflow on loopback and gives each process only its own secrets", () => {
    const { mlflow, proxy } = children(container);
    expect(cmdline(mlflow)).toMatch(/--host 127\.0\.0\.1 /);
    const mlflowEnv = environOf(mlflow);
    const proxyEnv = environOf(proxy);
    expect(mlflowEnv.MLFLOW_BACKEND_STORE_URI).toContain("postgresql+psycopg2://u1:");
    expect(mlflowEnv).not.toHaveProperty("AUTH_PASSWORD");
    expect(proxyEnv).not.toHaveProperty("AUTH_PASSWORD"); // hashed, then removed
    for (const name of ["DATABASE_URL", "MLFLOW_BACKEND_STORE_URI", "AWS_SECRET_ACCESS_KEY"]) expect(proxyEnv).not.toHaveProperty(name);
    for (const pid of container.descendants()) {
      for (const secret of [PASSWORD, DB_PASSWORD, encodeURIComponent(DB_PASSWORD)]) expect(cmdline(pid)).not.toContain(secret);
    }
  });

  it("passes `npm run smoke` (the CLI, unchanged), the artifact landing in the bucket included", async () => {
    const dir = makeTempDir("paas-smoke");
    try {
      const passwordFile = join(dir.dir, "password");
      writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
      const { stdout } = await promisify(execFile)(
        join(ROOT, "node_modules", ".bin", "tsx"),
        [join(ROOT, "scripts", "smoke.ts"), "--url", container.url, "--user", USER, "--password-file", passwordFile, "--s3-endpoint", s3.endpoint, "--s3-bucket", BUCKET, "--large", "8MiB"],
        { cwd: dir.dir, env: { PATH: process.env.PATH, HOME: dir.dir, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } },
      );
      expect(stdout).toMatch(/^ {2}PASS {2}artifact in bucket/m);
      expect(stdout.trimEnd().split("\n").at(-1)).toMatch(/^smoke: OK: 19 passed, 0 failed, 0 skipped/);
    } finally {
      dir.cleanup();
    }
  }, 60_000);

  it("stops both processes on SIGTERM and exits 0", async () => {
    const running = await start(platformEnv(s3));
    const { mlflow, proxy } = children(running);
    running.proc.child.kill("SIGTERM");
    expect(await running.exited).toBe(0);
    expect(alive(mlflow)).toBe(false);
    expect(alive(proxy)).toBe(false);
    expect(running.output()).toMatch(/supervisor \| SIGTERM received: stopping mlflow and proxy/);
  }, 60_000);

  it.each(["mlflow", "proxy"] as const)("ends with a non-zero code when %s dies, stopping the other", async (victim) => {
    const running = await start(platformEnv(s3));
    const pids = children(running);
    process.kill(pids[victim], "SIGKILL");
    expect(await running.exited).toBe(137);
    const other = victim === "mlflow" ? pids.proxy : pids.mlflow;
    expect(alive(other)).toBe(false);
    expect(running.output()).toContain(`supervisor | ${victim} exited with code 137: stopping`);
  }, 60_000);

  it("refuses to start without a database URL (MLflow's one-line reason), and stops the proxy", async () => {
    const env = platformEnv(s3);
    delete env.DATABASE_URL;
    const running = await start(env, false);
    expect(await running.exited).toBe(1);
    expect(running.output()).toMatch(/^mlflow \| mlflow-entrypoint: error: no database: set DATABASE_URL .*MLFLOW_ALLOW_SQLITE=true/m);
    expect(running.output()).toMatch(/supervisor \| mlflow exited with code 1: stopping proxy/);
    expect(running.descendants()).toEqual([]);
  }, 60_000);

  it("refuses PORT equal to MLflow's inner port", async () => {
    const running = await start({ ...platformEnv(s3), PORT: "5000", MLFLOW_PORT: "5000" }, false);
    expect(await running.exited).toBe(1);
    expect(running.output()).toMatch(/supervisor \| error: PORT and MLFLOW_PORT are both 5000: set MLFLOW_PORT to another free port/);
  });
});
