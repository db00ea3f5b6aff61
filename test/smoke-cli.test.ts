// npm run smoke as a user runs it: settings from .env / secrets / MLFLOW_TRACKING_*, output, --json, exit codes.
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSize } from "../scripts/lib/smoke/advice.ts";
import { resolveSettings } from "../scripts/lib/smoke/config.ts";
import { startMlflowDouble, type MlflowDouble } from "./support/mlflow-double.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const SMOKE = join(ROOT, "scripts", "smoke.ts");
const PASSWORD = "s3cret-Pa55word-for-the-smoke";

let double: MlflowDouble;
let stack: { dir: string; cleanup: () => void };

/** A bootstrapped stack folder: .env pointing at the double's port, the user's password in secrets/. */
function writeStack(dir: string, env: Record<string, string>, secrets: Record<string, string> = {}) {
  writeFileSync(join(dir, ".env"), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""));
  mkdirSync(join(dir, "secrets"), { recursive: true, mode: 0o700 });
  for (const [name, value] of Object.entries(secrets)) writeFileSync(join(dir, "secrets", name), `${value}\n`, { mode: 0o600 });
}

beforeAll(async () => {
  double = await startMlflowDouble({ basicAuth: { username: "mlflow", password: PASSWORD } });
  stack = makeTempDir("smoke-cli");
  writeStack(stack.dir, { DOMAIN: "localhost", PROXY_PORT: String(double.port), MLFLOW_VERSION: "3.11.2.dev0", MLFLOW_BUCKET: "mlflow" }, { "proxy_password.mlflow": PASSWORD });
});
afterAll(async () => {
  await double?.stop();
  stack?.cleanup();
});

async function smoke(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...options.env };
  try {
    const { stdout, stderr } = await promisify(execFile)(TSX, [SMOKE, ...args], { cwd: options.cwd ?? stack.dir, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

describe("npm run smoke (the CLI)", () => {
  it("runs against the local stack from .env and secrets/, prints a line per check and a summary, exit 0", async () => {
    const result = await smoke([]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`smoke: http://localhost:${double.port} as mlflow`);
    expect(lines.filter((l) => /^ {2}(PASS|FAIL|SKIP) {2}/.test(l))).toHaveLength(19);
    expect(result.stdout).toMatch(/^ {2}PASS {2}version +\d+ ms {2}3\.11\.2\.dev0 \(= MLFLOW_VERSION\)$/m);
    expect(result.stdout).toMatch(/^ {2}SKIP {2}artifact in bucket +\d+ ms {2}no --s3-endpoint/m);
    expect(lines.at(-1)).toMatch(/^smoke: OK: 17 passed, 0 failed, 2 skipped in \d+\.\d\d s$/);
    expect(result.stdout).not.toContain(PASSWORD);
  });

  it("--json prints the report on stdout (progress on stderr) and the password nowhere", async () => {
    const result = await smoke(["--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; url: string; user: string; results: { name: string; status: string; ms: number }[] };
    expect(report).toMatchObject({ ok: true, url: `http://localhost:${double.port}`, user: "mlflow" });
    expect(report.results.map((r) => r.name)).toContain("metric history");
    expect(report.results.every((r) => typeof r.ms === "number")).toBe(true);
    expect(result.stderr).toContain("smoke: OK:");
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it("MLFLOW_TRACKING_* override the local stack; a failing check exits 1 with the fix", async () => {
    const result = await smoke([], {
      env: { MLFLOW_TRACKING_URI: double.url, MLFLOW_TRACKING_USERNAME: "mlflow", MLFLOW_TRACKING_PASSWORD: "not-the-password" },
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`smoke: ${double.url} as mlflow`);
    expect(result.stdout).toMatch(/^ {2}FAIL {2}version .*answered 401/m);
    expect(result.stdout).toMatch(/^ {8}fix: the proxy rejected user 'mlflow': check the password/m);
    // Every later 401 has the same fix: printed once, then referred to.
    expect(result.stdout.match(/fix: the proxy rejected user/g)).toHaveLength(1);
    expect(result.stdout).toMatch(/^ {2}FAIL {2}create experiment .*\n {8}fix: \(as above\)$/m);
    expect(result.stdout).toMatch(/^smoke: FAILED: \d+ passed, \d+ failed, \d+ skipped/m);
    expect(result.stdout).not.toContain("not-the-password");
  });

  it("expected failures are one line, no stack trace: a missing password, a bad option", async () => {
    const empty = makeTempDir("smoke-cli-empty");
    try {
      writeStack(empty.dir, { DOMAIN: "localhost", PROXY_PORT: "8080" });
      const noPassword = await smoke([], { cwd: empty.dir });
      expect(noPassword.code).toBe(1);
      expect(noPassword.stderr.trim()).toMatch(/^smoke: no password for user 'mlflow': .*proxy_password\.mlflow does not exist; run npm run bootstrap/);
      expect(noPassword.stderr.trim().split("\n")).toHaveLength(1);
      const bogus = await smoke(["--bogus"]);
      expect(bogus.code).toBe(2);
      expect(bogus.stderr.trim()).toBe("smoke: Unknown option '--bogus' (see: npm run smoke -- --help)");
      const help = await smoke(["--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Usage: npm run smoke -- [options]");
    } finally {
      empty.cleanup();
    }
  });
});

describe("smoke settings", () => {
  it("on a server (DOMAIN set) the URL is https://DOMAIN; --url, --user and --password-file win", () => {
    const dir = makeTempDir("smoke-settings");
    try {
      writeStack(dir.dir, { DOMAIN: "mlflow.example.com", PROXY_PORT: "8080", MLFLOW_VERSION: "3.15.1" }, { "proxy_password.mlflow": "pw1", "proxy_password.bob": "pw2" });
      expect(resolveSettings({}, {}, dir.dir)).toMatchObject({ url: "https://mlflow.example.com", username: "mlflow", password: "pw1", expectedVersion: "3.15.1" });
      expect(resolveSettings({ user: "bob" }, {}, dir.dir)).toMatchObject({ username: "bob", password: "pw2" });
      writeFileSync(join(dir.dir, "pw"), "from-file\r\n");
      expect(resolveSettings({ url: "http://10.0.0.5:8080/", "password-file": join(dir.dir, "pw") }, { MLFLOW_TRACKING_URI: "http://ignored" }, dir.dir)).toMatchObject({
        url: "http://10.0.0.5:8080",
        password: "from-file",
      });
      expect(() => resolveSettings({ url: "http://alice:pw@host" }, {}, dir.dir)).toThrow(/not in the URL/);
      expect(() => resolveSettings({ timeout: "soon" }, {}, dir.dir)).toThrow(/--timeout "soon"/);
      expect(resolveSettings({ timeout: "500ms", large: "2GiB" }, {}, dir.dir)).toMatchObject({ timeoutMs: 500, largeBytes: 2 * 1024 ** 3 });
    } finally {
      dir.cleanup();
    }
  });

  it("S3: skipped without --s3-endpoint; with it, credentials from .env + secrets or AWS_*", () => {
    const dir = makeTempDir("smoke-settings-s3");
    try {
      writeStack(dir.dir, { DOMAIN: "localhost", MINIO_ROOT_USER: "minio-user", MLFLOW_BUCKET: "artifacts" }, { "proxy_password.mlflow": "pw", minio_root_password: "minio-pw" });
      expect(resolveSettings({}, {}, dir.dir).s3).toMatchObject({ skip: expect.stringContaining("--s3-endpoint") });
      expect(resolveSettings({ "s3-endpoint": "http://127.0.0.1:9000" }, {}, dir.dir).s3).toEqual({
        endpoint: "http://127.0.0.1:9000",
        region: "us-east-1",
        bucket: "artifacts",
        prefix: "",
        accessKeyId: "minio-user",
        secretAccessKey: "minio-pw",
      });
      expect(resolveSettings({ "s3-endpoint": "http://s3", "s3-bucket": "b" }, { AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" }, dir.dir).s3).toMatchObject({ bucket: "b", accessKeyId: "k", secretAccessKey: "s" });
    } finally {
      dir.cleanup();
    }
  });

  it("sizes: binary and decimal units", () => {
    expect(parseSize("2GiB")).toBe(2 * 1024 ** 3);
    expect(parseSize("500MB")).toBe(500e6);
    expect(parseSize("10M")).toBe(10 * 1024 ** 2);
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize("lots")).toBeUndefined();
    expect(parseSize("0")).toBeUndefined();
  });
});
