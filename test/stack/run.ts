// npm run test:stack — the stack for real: Docker Engine + Compose v2, the project's compose files unchanged, the
// README's commands in the README's order. Stand-in images unless STACK_IMAGES=real (see test/stack/stand-ins/).
//
//   install Docker (test/stack/install-docker.sh) -> build the stand-ins -> a copy of the project -> npm run bootstrap
//   -> secrets/ owned by uid 1000 (as after a user's own `npm run bootstrap`: root in a container reads them only with
//      DAC_OVERRIDE, the one capability most services keep)
//   -> compose.yml: up --wait, smoke (bucket check included), 401s, least privilege (docker inspect: capabilities,
//      read-only root, no-new-privileges, pids, restart; MLflow's S3 key limited to its bucket, the root key not in
//      MLflow's container), restart and down/up keep the data, stopping the database makes MLflow unhealthy, npm run migrate (local-stack mode), smoke right after it, npm run backup and
//      restore --replace (local-stack mode), smoke
//   -> compose.nginx.yml: up --wait, smoke, 401s -> compose.prod.yml (loopback ports instead of 80/443): up --wait,
//      smoke over HTTPS (Caddy's own CA), 401s -> down -v
//
// Every phase is timed; a summary prints them. Clean-up runs always: `docker compose down -v`, the temporary copy, and
// dockerd/containerd when this run started them. Exit 0 only when every phase passed.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { $ } from "zx";
import { parseEnv, setEnvValue } from "../../scripts/lib/envfile.ts";
import { s3Client } from "../../scripts/lib/s3-client.ts";
import { passwordFromFile } from "../../scripts/lib/secrets.ts";
import { freePort } from "../support/ports.ts";
import { buildStandIns } from "./images.ts";
import { checkMlflowKey } from "./least-privilege.ts";
import { ALLOWED_CAPS, WRITABLE_ROOT } from "../support/compose.ts";
import { composeOverrideFromReadme, loopbackPortsOverride } from "./readme.ts";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`Usage: npm run test:stack   (as root; Debian 12)

Installs Docker Engine + Compose v2 if needed (test/stack/install-docker.sh), builds stand-in images (unless
STACK_IMAGES=real), and runs the README's commands against the project's compose files in a temporary copy:
compose.yml, then compose.nginx.yml, then compose.prod.yml on loopback ports. Prints each phase's time; cleans up
always. STACK_VERBOSE=1 shows every command's output. Exit 0 only when every phase passed.
`);
  process.exit(0);
}
const ROOT = join(import.meta.dirname, "../..");
const INSTALL = join(import.meta.dirname, "install-docker.sh");
const FIXTURES = join(ROOT, "test/fixtures/mlflow-3.11");
const realImages = process.env.STACK_IMAGES === "real";
// The AWS SDK's notice about Node < 22 (its future releases) would land in the middle of the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const started = performance.now();

// ---- phases, timings, output ----
interface Phase {
  name: string;
  seconds: number;
  ok: boolean;
}
const phases: Phase[] = [];
const log = (line: string) => process.stdout.write(`${line}\n`);
async function phase<T>(name: string, work: () => Promise<T>): Promise<T> {
  log(`\n== ${name}`);
  const t0 = performance.now();
  try {
    const result = await work();
    phases.push({ name, seconds: (performance.now() - t0) / 1000, ok: true });
    log(`   ok (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    return result;
  } catch (error) {
    phases.push({ name, seconds: (performance.now() - t0) / 1000, ok: false });
    throw error;
  }
}
class StackTestFailure extends Error {}
function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new StackTestFailure(message);
}

// ---- commands ----
let dockerEnv: Record<string, string> = {};
/** A command in the project copy, as a user types it; its output is shown when it fails (or with STACK_VERBOSE=1). */
async function run(dir: string, command: string[], { input, env = {}, allowFail = false }: { input?: string; env?: Record<string, string>; allowFail?: boolean } = {}) {
  log(`   $ ${command.join(" ")}`);
  const result = await $({ cwd: dir, quiet: !process.env.STACK_VERBOSE, nothrow: true, input, env: { ...process.env, ...dockerEnv, ...env } })`${command}`;
  if (result.exitCode !== 0 && !allowFail) {
    process.stdout.write(result.stdout.split("\n").slice(-40).map((l) => `   | ${l}`).join("\n") + "\n");
    process.stdout.write(result.stderr.split("\n").slice(-40).map((l) => `   ! ${l}`).join("\n") + "\n");
    throw new StackTestFailure(`\`${command.join(" ")}\` exited ${result.exitCode}`);
  }
  return result;
}

/** GET through the proxy; status only. `ca` for Caddy's local CA over HTTPS. */
function status(url: string, { user, password, ca }: { user?: string; password?: string; ca?: string } = {}): Promise<number> {
  const target = new URL(url);
  const headers: Record<string, string> = {};
  if (user !== undefined) headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    const request = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, { headers, ca, timeout: 30_000 }, (answer) => {
      answer.resume();
      resolve(answer.statusCode ?? 0);
    });
    request.on("timeout", () => request.destroy(new Error(`no answer from ${url}`)));
    request.on("error", reject);
    request.end();
  });
}

async function expectAuth(base: string, user: string, password: string, ca?: string) {
  const api = `${base}/api/2.0/mlflow/experiments/get?experiment_id=0`;
  expect((await status(`${base}/health`, { ca })) === 200, `${base}/health: expected 200 without credentials`);
  const none = await status(api, { ca });
  expect(none === 401, `${api} without credentials: expected 401, got ${none}`);
  const wrong = await status(api, { user, password: `${password}x`, ca });
  expect(wrong === 401, `${api} with a wrong password: expected 401, got ${wrong}`);
  const right = await status(api, { user, password, ca });
  expect(right === 200, `${api} with the right password: expected 200, got ${right}`);
  log(`   401 without and with a wrong password, 200 with the right one, /health open`);
}

interface SmokeReport {
  ok: boolean;
  results: { name: string; status: string; detail?: string }[];
  created: { experimentName: string; experimentId?: string };
}
/** `npm run smoke -- ARGS --json`; every check but the skipped ones must pass, the 401 checks included. */
async function smoke(dir: string, args: string[], env: Record<string, string> = {}): Promise<SmokeReport> {
  const result = await run(dir, ["npm", "run", "--silent", "smoke", "--", ...args, "--json"], { env, allowFail: true });
  let report: SmokeReport;
  try {
    report = JSON.parse(result.stdout.slice(result.stdout.indexOf("{")));
  } catch {
    throw new StackTestFailure(`smoke printed no report (exit ${result.exitCode}): ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  }
  for (const r of report.results) log(`   ${r.status.toUpperCase().padEnd(4)}  ${r.name}${r.detail ? `  ${r.detail.slice(0, 110)}` : ""}`);
  expect(result.exitCode === 0 && report.ok, "smoke failed");
  for (const name of ["auth: no credentials", "auth: wrong password"])
    expect(report.results.find((r) => r.name === name)?.status === "pass", `smoke's "${name}" did not pass`);
  return report;
}

async function health(dir: string, service: string): Promise<string> {
  const quiet = $({ cwd: dir, quiet: true, nothrow: true });
  const id = (await quiet`docker compose ps -q ${service}`).stdout.trim();
  if (!id) return "missing";
  return (await quiet`docker inspect --format {{.State.Health.Status}} ${id}`).stdout.trim();
}

/** docker inspect of every container of the project (the exited createbuckets too) against the compose policy. */
async function expectHardened(dir: string, files: string[]) {
  const quiet = $({ cwd: dir, quiet: true });
  const ids = (await quiet`docker compose ${files} ps -aq`).stdout.trim().split("\n").filter(Boolean);
  const containers = JSON.parse((await quiet`docker inspect ${ids}`).stdout) as {
    Config: { Labels: Record<string, string> };
    HostConfig: { CapAdd: string[] | null; CapDrop: string[] | null; ReadonlyRootfs: boolean; SecurityOpt: string[] | null; PidsLimit: number | null; RestartPolicy: { Name: string } };
  }[];
  const seen: string[] = [];
  for (const c of containers) {
    const name = c.Config.Labels["com.docker.compose.service"];
    const host = c.HostConfig;
    const caps = (host.CapAdd ?? []).map((cap) => cap.replace(/^CAP_/, ""));
    expect((host.CapDrop ?? []).some((cap) => /^(CAP_)?ALL$/.test(cap)), `${name}: capabilities not dropped (CapDrop ${JSON.stringify(host.CapDrop)})`);
    for (const cap of caps) expect((ALLOWED_CAPS[name] ?? []).includes(cap), `${name}: runs with ${cap}`);
    expect((host.SecurityOpt ?? []).some((o) => /^no-new-privileges(:true)?$/.test(o)), `${name}: no no-new-privileges (${JSON.stringify(host.SecurityOpt)})`);
    expect((host.PidsLimit ?? 0) > 0, `${name}: no pids limit`);
    expect(host.ReadonlyRootfs || name in WRITABLE_ROOT, `${name}: writable root filesystem`);
    expect(host.RestartPolicy.Name === (name === "createbuckets" ? "no" : "unless-stopped"), `${name}: restart policy ${host.RestartPolicy.Name}`);
    seen.push(`${name} [${caps.join(",") || "none"}${host.ReadonlyRootfs ? ", ro" : ""}, pids ${host.PidsLimit}]`);
  }
  expect(containers.length === 5, `expected 5 containers, found ${containers.length}`);
  log(`   cap_drop ALL, no-new-privileges, pids limit, restart: ${seen.join("; ")}`);
}

// ---- the test ----
let dir = "";
let startedDocker = false;
let files: string[] = [];
let failure: unknown;
// Ctrl-C or a kill: clean up synchronously before leaving (the awaited work is abandoned).
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    log(`\n${signal}: cleaning up`);
    if (dir && existsSync(join(dir, ".env"))) spawnSync("docker", ["compose", ...files, "down", "-v", "--remove-orphans"], { cwd: dir, stdio: "inherit" });
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (startedDocker) spawnSync("bash", [INSTALL, "--stop"], { stdio: "inherit" });
    process.exit(130);
  });
try {
  await phase("Docker Engine + Compose v2 (test/stack/install-docker.sh)", async () => {
    const before = await $({ quiet: true, nothrow: true })`bash ${INSTALL} --status`;
    startedDocker = before.exitCode !== 0;
    const out = await $({ quiet: false })`bash ${INSTALL}`;
    const line = out.stdout.trim().split("\n").find((l) => l.startsWith("DOCKER_HOST="));
    expect(line, "install-docker.sh printed no DOCKER_HOST");
    dockerEnv = { DOCKER_HOST: line.slice("DOCKER_HOST=".length) };
    process.env.DOCKER_HOST = dockerEnv.DOCKER_HOST;
  });

  dir = mkdtempSync(join(tmpdir(), "mlflow-stack-test-"));
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => !/\/(node_modules|\.git|secrets)$|\/\.env$|\/compose\.override\.yml$/.test(src),
  });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  log(`project copy: ${dir} (compose project ${dir.split("/").at(-1)!.toLowerCase()})`);

  if (!realImages) {
    await phase("stand-in images (debootstrap trixie base, docker build)", () => buildStandIns((line) => log(`   ${line}`)));
  }

  const settings = await phase("npm run bootstrap", async () => {
    await run(dir, ["npm", "run", "bootstrap"]);
    // Free loopback ports instead of the defaults, set the way a user sets them: in .env.
    const proxyPort = await freePort();
    const minioPort = await freePort();
    let env = readFileSync(join(dir, ".env"), "utf8");
    env = setEnvValue(env, "PROXY_PORT", String(proxyPort));
    env = setEnvValue(env, "MINIO_PORT", String(minioPort));
    writeFileSync(join(dir, ".env"), env);
    // README: "publish MinIO for smoke's bucket check" — the very snippet, as compose.override.yml.
    writeFileSync(join(dir, "compose.override.yml"), composeOverrideFromReadme(readFileSync(join(ROOT, "README.md"), "utf8")));
    const values = parseEnv(env);
    const password = passwordFromFile(readFileSync(join(dir, "secrets/proxy_password.mlflow"), "utf8"));
    // A user runs bootstrap as themselves: the secrets (0600) belong to uid 1000, not to root.
    await $({ quiet: true })`chown -R 1000:1000 ${join(dir, "secrets")}`;
    const mlflowKey = {
      endpoint: `http://127.0.0.1:${minioPort}`,
      accessKeyId: values.MLFLOW_S3_ACCESS_KEY,
      secretAccessKey: passwordFromFile(readFileSync(join(dir, "secrets/mlflow_s3_secret_key"), "utf8")),
    };
    const minio = {
      endpoint: `http://127.0.0.1:${minioPort}`,
      accessKeyId: values.MINIO_ROOT_USER,
      secretAccessKey: passwordFromFile(readFileSync(join(dir, "secrets/minio_root_password"), "utf8")),
    };
    return { proxyPort, minioPort, password, minio, mlflowKey, bucket: values.MLFLOW_BUCKET, base: `http://127.0.0.1:${proxyPort}` };
  });

  await phase("compose.yml: docker compose up -d --wait", () => run(dir, ["docker", "compose", "up", "-d", "--wait"]));
  const first = await phase("compose.yml: smoke (bucket check included) and 401s", async () => {
    const report = await smoke(dir, ["--s3-endpoint", settings.minio.endpoint]);
    expect(report.results.find((r) => r.name === "artifact in bucket")?.status === "pass", "the bucket check did not pass");
    await expectAuth(settings.base, "mlflow", settings.password);
    return report;
  });

  await phase("compose.yml: no secret in docker inspect, the logs or the containers' process lists", async () => {
    const secrets = [settings.password, settings.minio.secretAccessKey, settings.mlflowKey.secretAccessKey, passwordFromFile(readFileSync(join(dir, "secrets/postgres_password"), "utf8"))];
    const quiet = $({ cwd: dir, quiet: true });
    const ids = (await quiet`docker compose ps -q`).stdout.trim().split("\n").filter(Boolean);
    const texts: Record<string, string> = {
      "docker inspect": (await quiet`docker inspect ${ids}`).stdout,
      "docker compose logs": (await quiet`docker compose logs --no-color`).stdout,
    };
    for (const id of ids) texts[`docker top ${id.slice(0, 12)}`] = (await quiet`docker top ${id} -eo pid,args`).stdout;
    for (const [where, text] of Object.entries(texts)) for (const secret of secrets) expect(!text.includes(secret), `a password shows in ${where}`);
    log(`   none of the ${secrets.length} passwords in docker inspect, the logs or ${ids.length} process lists`);
  });

  await phase("compose.yml: least privilege in docker inspect (capabilities, read-only root, no-new-privileges, pids, restart)", () =>
    expectHardened(dir, []),
  );

  await phase("compose.yml: MLflow's S3 key is limited to its bucket; the root key is not in MLflow's container", async () => {
    const problems = await checkMlflowKey(settings.minio, settings.mlflowKey, settings.bucket);
    expect(problems.length === 0, problems.join("; "));
    log("   MLflow's key: its bucket's objects yes; another bucket, a new bucket, the admin API: 403");
    const mounted = (await run(dir, ["docker", "compose", "exec", "-T", "mlflow", "ls", "/run/secrets"])).stdout.split(/\s+/).filter(Boolean);
    expect(!mounted.includes("minio_root_password"), `MLflow's container has the root key: /run/secrets holds ${mounted.join(", ")}`);
    const environ = (await run(dir, ["docker", "compose", "exec", "-T", "mlflow", "sh", "-c", "cat /proc/1/environ | tr '\\0' '\\n'"])).stdout;
    expect(!environ.includes(settings.minio.secretAccessKey), "MLflow's process environment holds the root key");
    expect(environ.includes(`AWS_ACCESS_KEY_ID=${settings.mlflowKey.accessKeyId}`), "MLflow's process does not sign with its own access key");
    log(`   /run/secrets in mlflow: ${mounted.join(", ")}; its process signs as ${settings.mlflowKey.accessKeyId}`);
  });

  const s3 = s3Client(settings.minio, 3);
  const keepKey = `stack-test/keep-${randomBytes(4).toString("hex")}.txt`;
  const keepBody = `kept ${new Date().toISOString()}`;
  const experimentUrl = `${settings.base}/api/2.0/mlflow/experiments/get?experiment_id=${first.created.experimentId}`;
  const kept = async (when: string) => {
    const got = await s3.send(new GetObjectCommand({ Bucket: settings.bucket, Key: keepKey }));
    expect((await got.Body!.transformToString()) === keepBody, `${when}: the object in the bucket changed`);
    // smoke's (deleted) experiment is a row in PostgreSQL: still there.
    const code = await status(experimentUrl, { user: "mlflow", password: settings.password });
    expect(code === 200, `${when}: smoke's experiment ${first.created.experimentId} is gone (GET answered ${code})`);
    log(`   ${when}: bucket object and smoke's experiment ${first.created.experimentId} still there`);
  };
  await phase("compose.yml: restart and down/up keep the data", async () => {
    await s3.send(new PutObjectCommand({ Bucket: settings.bucket, Key: keepKey, Body: keepBody }));
    await kept("before");
    await run(dir, ["docker", "compose", "restart"]);
    await run(dir, ["docker", "compose", "up", "-d", "--wait"]);
    await kept("after restart");
    await run(dir, ["docker", "compose", "down"]);
    await run(dir, ["docker", "compose", "up", "-d", "--wait"]);
    await kept("after down/up");
    await s3.send(new DeleteObjectCommand({ Bucket: settings.bucket, Key: keepKey }));
  });

  await phase("compose.yml: stopping the database makes mlflow unhealthy", async () => {
    await run(dir, ["docker", "compose", "stop", "db"]);
    const deadline = Date.now() + 150_000;
    let state = "";
    while (Date.now() < deadline && (state = await health(dir, "mlflow")) !== "unhealthy") await new Promise((r) => setTimeout(r, 2000));
    expect(state === "unhealthy", `mlflow stayed ${state} with the database stopped`);
    log("   mlflow: unhealthy");
    await run(dir, ["docker", "compose", "up", "-d", "--wait"]);
    expect((await health(dir, "mlflow")) === "healthy", "mlflow did not recover with the database back");
  });

  await phase("compose.yml: npm run migrate (local-stack mode), smoke right after", async () => {
    // The fixture's runs that logged no files have no folder: accepted knowingly (README: the artifact plan).
    await run(dir, ["npm", "run", "migrate", "--", "--from", join(FIXTURES, "mlflow-small.sqlite"), "--artifacts", join(FIXTURES, "mlflow-small-artifacts"), "--allow-missing-artifacts", "--yes"]);
    await smoke(dir, ["--s3-endpoint", settings.minio.endpoint]);
  });

  await phase("compose.yml: npm run backup, then restore --replace (local-stack mode), smoke", async () => {
    const backup = JSON.parse((await run(dir, ["npm", "run", "--silent", "backup", "--", "--json"])).stdout) as { name: string; where: string; manifest: { objects: { count: number } } };
    expect(backup.manifest.objects.count > 0, "the backup holds no bucket object (the migrated artifacts are missing)");
    log(`   backup ${backup.name}: ${backup.manifest.objects.count} objects`);
    await run(dir, ["npm", "run", "restore", "--", "--from", join(backup.where, backup.name), "--replace", "--yes"]);
    await smoke(dir, ["--s3-endpoint", settings.minio.endpoint]);
  });

  files = ["-f", "compose.yml", "-f", "compose.nginx.yml"];
  await phase("compose.nginx.yml: up -d --wait, smoke, 401s", async () => {
    await run(dir, ["docker", "compose", ...files, "up", "-d", "--wait"]);
    await smoke(dir, []);
    await expectAuth(settings.base, "mlflow", settings.password);
    await expectHardened(dir, files);
  });

  await phase("compose.prod.yml (loopback ports): up -d --wait, smoke over HTTPS, 401s", async () => {
    const [http, https] = [await freePort(), await freePort()];
    writeFileSync(join(dir, "compose.test-ports.yml"), loopbackPortsOverride(http, https));
    files = ["-f", "compose.yml", "-f", "compose.prod.yml", "-f", "compose.test-ports.yml"];
    await run(dir, ["docker", "compose", ...files, "up", "-d", "--wait"]);
    // DOMAIN=localhost: Caddy issues from its own CA; trust that CA for this check only.
    const ca = (await run(dir, ["docker", "compose", ...files, "exec", "-T", "proxy", "cat", "/data/caddy/pki/authorities/local/root.crt"])).stdout;
    writeFileSync(join(dir, "caddy-root.crt"), ca);
    const base = `https://localhost:${https}`;
    await smoke(dir, ["--url", base], { NODE_EXTRA_CA_CERTS: join(dir, "caddy-root.crt") });
    await expectAuth(base, "mlflow", settings.password, ca);
    await expectHardened(dir, files);
  });
} catch (error) {
  failure = error;
  log(`\nFAILED: ${error instanceof Error ? error.message : String(error)}`);
  if (dir && Object.keys(dockerEnv).length) {
    const ps = await $({ cwd: dir, quiet: true, nothrow: true, env: { ...process.env, ...dockerEnv } })`docker compose ${files} ps -a`;
    log(ps.stdout);
    const logs = await $({ cwd: dir, quiet: true, nothrow: true, env: { ...process.env, ...dockerEnv } })`docker compose ${files} logs --tail 30`;
    log(logs.stdout.split("\n").slice(-120).join("\n"));
  }
} finally {
  if (dir) {
    await phase("clean-up: docker compose down -v", async () => {
      if (Object.keys(dockerEnv).length && existsSync(join(dir, ".env"))) {
        await run(dir, ["docker", "compose", ...(files.length ? files : []), "down", "-v", "--remove-orphans"], { allowFail: true });
        const volumes = await $({ quiet: true, nothrow: true, env: { ...process.env, ...dockerEnv } })`docker volume ls -q --filter label=com.docker.compose.project=${dir.split("/").at(-1)!.toLowerCase()}`;
        expect(!volumes.stdout.trim(), `volumes left after down -v: ${volumes.stdout.trim()}`);
      }
      rmSync(dir, { recursive: true, force: true });
    }).catch((error) => (failure ??= error));
  }
  if (startedDocker) await phase("clean-up: stop dockerd and containerd", () => $({ quiet: true })`bash ${INSTALL} --stop`).catch((error) => (failure ??= error));
}

log("\nphase timings:");
for (const p of phases) log(`  ${p.ok ? "ok  " : "FAIL"}  ${p.seconds.toFixed(1).padStart(7)} s  ${p.name}`);
log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s${realImages ? " (real images)" : " (stand-in images)"}`);
const failed = phases.filter((p) => !p.ok).length;
log(`${phases.length - failed} passed, ${failed} failed`);
process.exitCode = failure || failed ? 1 : 0;
