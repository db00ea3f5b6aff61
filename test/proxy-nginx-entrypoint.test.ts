// nginx/docker-entrypoint.d scripts, run for real with sh on fake paths (env vars), and the trap they exist for:
// workers (not root) cannot read a 0600 compose secret, so without 10-proxy-users.sh every request answers 500.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, htpasswdFile, httpRequest, NGINX_ENTRYPOINT_DIR, startNginx, type RunningProxy } from "./support/proxies.ts";
import { makeTempDir } from "./support/tmp.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const run = promisify(execFile);
const USERS_SCRIPT = join(NGINX_ENTRYPOINT_DIR, "10-proxy-users.sh");
const BODY_SIZE_SCRIPT = join(NGINX_ENTRYPOINT_DIR, "15-proxy-max-body-size.envsh");
const isRoot = process.getuid?.() === 0;
// The group the copy is given: nginx in the image; here one that exists.
const group = isRoot ? "nogroup" : String(process.getgid!());
const groupId = isRoot ? 65534 : process.getgid!();

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));
function tempDir(): string {
  const { dir, cleanup } = makeTempDir("nginx-entrypoint");
  cleanups.push(cleanup);
  return dir;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(script: string, env: Record<string, string>): Promise<Result> {
  try {
    const { stdout, stderr } = await run("sh", ["-c", script], { env: { PATH: process.env.PATH!, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error: any) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

const HTPASSWD = "alice:{SSHA}q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2v3b4\nbob:{SSHA}m1n2b3v4c5x6z7l8k9j0h1g2f3d4s5a6p7o8i9u0y1t2r3e4\n";

describe("10-proxy-users.sh", () => {
  function paths(dir: string) {
    return { secret: join(dir, "run-secrets", "proxy_users_htpasswd"), target: join(dir, "etc-nginx", "proxy_users.htpasswd") };
  }
  function envFor(dir: string) {
    const { secret, target } = paths(dir);
    return { PROXY_USERS_SECRET: secret, NGINX_HTPASSWD: target, NGINX_HTPASSWD_GROUP: group };
  }
  function writeSecret(dir: string, content: string) {
    const { secret } = paths(dir);
    mkdirSync(join(dir, "run-secrets"), { recursive: true });
    writeFileSync(secret, content, { mode: 0o600 });
  }

  it("is executable (the image skips scripts without the exec bit)", () => {
    expect(statSync(USERS_SCRIPT).mode & 0o111).toBe(0o111);
    expect(statSync(BODY_SIZE_SCRIPT).mode & 0o111).toBe(0o111);
  });

  it("copies the secret to NGINX_HTPASSWD with mode 0440 and the workers' group, without logging it", async () => {
    const dir = tempDir();
    writeSecret(dir, HTPASSWD);
    const result = await sh(`"${USERS_SCRIPT}"`, envFor(dir));
    expect(result).toMatchObject({ code: 0 });
    const { target } = paths(dir);
    expect(readFileSync(target, "utf8")).toBe(HTPASSWD);
    const info = statSync(target);
    expect(info.mode & 0o777).toBe(0o440);
    expect(info.gid).toBe(groupId);
    expect(result.stdout).toContain(target);
    expect(result.stdout + result.stderr).not.toContain("{SSHA}");
    expect(readdirSync(join(dir, "etc-nginx"))).toEqual(["proxy_users.htpasswd"]);
  });

  it("replaces an earlier copy when the secret changes (password rotation)", async () => {
    const dir = tempDir();
    writeSecret(dir, HTPASSWD);
    expect((await sh(`"${USERS_SCRIPT}"`, envFor(dir))).code).toBe(0);
    writeSecret(dir, "carol:{SSHA}abc\n");
    expect((await sh(`"${USERS_SCRIPT}"`, envFor(dir))).code).toBe(0);
    expect(readFileSync(paths(dir).target, "utf8")).toBe("carol:{SSHA}abc\n");
  });

  const failures: [string, (dir: string) => Record<string, string>, RegExp][] = [
    ["the secret is missing", (dir) => envFor(dir), /missing.*npm run bootstrap/],
    ["the secret is empty", (dir) => (writeSecret(dir, ""), envFor(dir)), /empty.*npm run bootstrap/],
    ["the secret has no user:hash line", (dir) => (writeSecret(dir, "# nothing here\n\n"), envFor(dir)), /no <user>:<hash> line/],
    ["NGINX_HTPASSWD is unset", (dir) => (writeSecret(dir, HTPASSWD), { ...envFor(dir), NGINX_HTPASSWD: "" }), /NGINX_HTPASSWD is not set/],
    ["NGINX_HTPASSWD is the secret itself", (dir) => (writeSecret(dir, HTPASSWD), { ...envFor(dir), NGINX_HTPASSWD: paths(dir).secret }), /must not be the secret/],
    ["the group does not exist", (dir) => (writeSecret(dir, HTPASSWD), { ...envFor(dir), NGINX_HTPASSWD_GROUP: "no-such-group-h1" }), /cannot install/],
  ];

  it.each(failures)("fails loudly, leaving the previous copy alone, when %s", async (_case, setup, message) => {
    const dir = tempDir();
    mkdirSync(join(dir, "etc-nginx"));
    writeFileSync(paths(dir).target, "previous:{SSHA}keep\n", { mode: 0o440 });
    const env = setup(dir);
    const result = await sh(`"${USERS_SCRIPT}"`, env);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/10-proxy-users\.sh: ERROR: /);
    expect(result.stderr).toMatch(message);
    // One line of ours (after the failing tool's own, if any).
    expect(result.stderr.trim().split("\n").at(-1)).toMatch(/^10-proxy-users\.sh: ERROR: /);
    expect(readFileSync(paths(dir).target, "utf8")).toBe("previous:{SSHA}keep\n");
    expect(readdirSync(join(dir, "etc-nginx"))).toEqual(["proxy_users.htpasswd"]);
  });

  it("also works when an entrypoint sources it instead of executing it", async () => {
    const dir = tempDir();
    writeSecret(dir, HTPASSWD);
    const ok = await sh(`set -e; . "${USERS_SCRIPT}"; echo next-script-runs`, envFor(dir));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("next-script-runs");
    const failed = await sh(`set -e; . "${USERS_SCRIPT}"; echo next-script-runs`, { ...envFor(dir), PROXY_USERS_SECRET: join(dir, "nope") });
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).not.toContain("next-script-runs");
    expect(failed.stderr).toMatch(/^10-proxy-users\.sh: ERROR: users file .* is missing/m);
  });
});

describe("15-proxy-max-body-size.envsh", () => {
  const source = (value: string | undefined) =>
    sh(`. "${BODY_SIZE_SCRIPT}"; printf '%s' "$PROXY_MAX_BODY_SIZE"`, value === undefined ? {} : { PROXY_MAX_BODY_SIZE: value });

  // Caddy's (go-humanize) meaning of each spelling, as bytes.
  const conversions: [string | undefined, string][] = [
    [undefined, "0"],
    ["0", "0"],
    ["1048576", "1048576"],
    ["1MB", "1000000"],
    ["500mb", "500000000"],
    ["10GB", "10000000000"],
    ["10G", "10000000000"],
    ["10g", "10000000000"],
    ["10 GB", "10000000000"],
    ["10GiB", "10737418240"],
    ["10gi", "10737418240"],
    ["64KiB", "65536"],
    ["2TB", "2000000000000"],
  ];
  it.each(conversions)("turns %s into %s bytes for nginx", async (value, bytes) => {
    const result = await source(value);
    expect(result).toMatchObject({ code: 0, stdout: bytes });
  });

  it.each(["1.5GB", "10XB", "-5", "GB", "ten", "10 G B", "99999999999999999"])("stops the container on %s, naming the setting", async (value) => {
    const result = await source(value);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`PROXY_MAX_BODY_SIZE='${value}'`);
    expect(result.stderr).toMatch(/\.env/);
  });
});

// The trap itself, for real: nginx workers run as nobody (we are root), the users file is a 0600 root file.
describe.skipIf(!isRoot || !requireBinary("nginx", "nginx-light") || !requireBinary("envsubst", "gettext-base"))("nginx workers and a 0600 users file", () => {
  let upstream: Upstream;
  const proxies: RunningProxy[] = [];
  const users = { alice: "Pz6Kq1Vw8Lx3Mr9Tb4Nc7Hd2" };
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    await upstream.stop();
  });

  it("answers 500 when the secret is used in place, 200 once 10-proxy-users.sh has installed it", async () => {
    const raw = await startNginx({ upstream: upstream.hostPort, usersFile: htpasswdFile(users), entrypointScripts: false });
    proxies.push(raw);
    const fixed = await startNginx({ upstream: upstream.hostPort, usersFile: htpasswdFile(users) });
    proxies.push(fixed);
    const authorization = basicAuth("alice", users.alice);
    expect((await httpRequest(raw.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization } })).status).toBe(500);
    for (let i = 0; i < 100 && !/Permission denied/.test(raw.output()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(raw.output()).toMatch(/proxy_users_htpasswd" failed \(13: Permission denied\)/);
    expect((await httpRequest(fixed.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization } })).status).toBe(200);
    expect(existsSync(join(fixed.dir, "proxy_users.htpasswd"))).toBe(true);
  });
});
