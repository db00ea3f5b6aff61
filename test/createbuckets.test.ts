// createbuckets/create-bucket.sh (the bucket job for platforms without Compose secrets) run for real with dash and a
// fake `mc` that records each call's argv and stdin, and can fail while the "server" starts.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findBinary, requireBinary } from "./support/binaries.ts";
import { makeTempDir } from "./support/tmp.ts";

const SCRIPT = resolve(import.meta.dirname, "../createbuckets/create-bucket.sh");
const shell = findBinary("dash") ?? "sh";
const shellcheck = requireBinary("shellcheck", "shellcheck");
const PASSWORD = "minio-Pa55:word/with'odd\"chars";

let tmp: ReturnType<typeof makeTempDir>;
let bin: string;
let runs = 0;

beforeAll(() => {
  tmp = makeTempDir("createbuckets");
  bin = join(tmp.dir, "bin");
  mkdirSync(bin);
  // One record per call: argv (NUL-separated), a tab, then stdin; `mb` fails while the count file says so.
  writeFileSync(
    join(bin, "mc"),
    `#!/bin/sh
stdin=""
if [ "$1" = alias ] || [ "$1 $2 $3" = "admin user add" ]; then stdin="$(cat)"; fi
if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" "$FAKE_MC_LOG.policy"; fi
if [ "$1 $2 $3" = "admin user info" ]; then printf '%s' "\${FAKE_MC_USER_INFO:-}"; fi
{ printf '%s\\0' "$@"; printf '\\t%s\\n' "$stdin" | tr '\\n' ' '; echo; } >> "$FAKE_MC_LOG"
printf '%s\\n' "$MC_CONFIG_DIR" > "$FAKE_MC_LOG.configdir"
if [ "$1" = mb ] && [ -f "$FAKE_MC_FAILS" ]; then
  left="$(cat "$FAKE_MC_FAILS")"
  if [ "$left" -gt 0 ]; then echo $((left - 1)) > "$FAKE_MC_FAILS"; echo "mc: connection refused" >&2; exit 1; fi
fi
exit 0
`,
    { mode: 0o755 },
  );
});
afterAll(() => tmp?.cleanup());

function run(env: Record<string, string>, { failures = 0 } = {}) {
  const log = join(tmp.dir, `mc-${++runs}.log`);
  const fails = join(tmp.dir, `fails-${runs}`);
  if (failures) writeFileSync(fails, String(failures));
  const result = spawnSync(shell, [SCRIPT], {
    env: { PATH: `${bin}:/usr/bin:/bin`, TMPDIR: tmp.dir, MINIO_SECRETS_DIR: join(tmp.dir, "none"), CREATEBUCKETS_DELAY: "0", FAKE_MC_LOG: log, FAKE_MC_FAILS: fails, ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  const calls = existsSync(log)
    ? readFileSync(log, "utf8").split("\n").filter(Boolean).map((line) => {
        const [argv, stdin] = line.split("\t");
        return { argv: argv.split("\0").slice(0, -1), stdin: stdin.trim() };
      })
    : [];
  const configDir = existsSync(`${log}.configdir`) ? readFileSync(`${log}.configdir`, "utf8").trim() : undefined;
  const policy = existsSync(`${log}.policy`) ? readFileSync(`${log}.policy`, "utf8") : undefined;
  return { status: result.status, output: result.stdout + result.stderr, calls, configDir, policy };
}

const env = { MINIO_ENDPOINT: "http://minio.railway.internal:9000", MINIO_ROOT_USER: "mlflow", MINIO_ROOT_PASSWORD: PASSWORD, MLFLOW_BUCKET: "mlflow-artifacts" };

describe("createbuckets/create-bucket.sh", () => {
  it("creates the bucket if missing and makes it private, the keys on stdin only", () => {
    const result = run(env);
    expect(result.status, result.output).toBe(0);
    expect(result.calls.map((c) => c.argv)).toEqual([
      ["alias", "set", "target", "http://minio.railway.internal:9000"],
      ["mb", "--ignore-existing", "target/mlflow-artifacts"],
      ["anonymous", "set", "private", "target/mlflow-artifacts"],
    ]);
    expect(result.calls[0].stdin).toBe(`mlflow ${PASSWORD}`);
    expect(result.calls.flatMap((c) => c.argv).join(" ")).not.toContain(PASSWORD);
    expect(result.output).not.toContain(PASSWORD);
    expect(result.output).toMatch(/bucket s3:\/\/mlflow-artifacts is ready/);
    expect(statSync(result.configDir!).mode & 0o777).toBe(0o700);
  });

  it("retries while the server is starting, then succeeds", () => {
    const result = run(env, { failures: 2 });
    expect(result.status, result.output).toBe(0);
    expect(result.calls.filter((c) => c.argv[0] === "mb")).toHaveLength(3);
    expect(result.output).toMatch(/not ready \(attempt 2 of 30\)/);
  });

  it("gives up after CREATEBUCKETS_ATTEMPTS with one line that says what to check", () => {
    const result = run({ ...env, CREATEBUCKETS_ATTEMPTS: "3" }, { failures: 10 });
    expect(result.status).toBe(1);
    expect(result.output.trim().split("\n").at(-1)).toMatch(/error: could not create s3:\/\/mlflow-artifacts .* after 3 attempts/);
    expect(result.calls.some((c) => c.argv[0] === "anonymous")).toBe(false);
  });

  it("reads the password from MINIO_ROOT_PASSWORD_FILE (the Compose secret's form)", () => {
    const file = join(tmp.dir, "minio_root_password");
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    const result = run({ ...env, MINIO_ROOT_PASSWORD: "", MINIO_ROOT_PASSWORD_FILE: file });
    expect(result.status, result.output).toBe(0);
    expect(result.calls[0].stdin).toBe(`mlflow ${PASSWORD}`);
  });

  it("with MLFLOW_S3_ACCESS_KEY/SECRET_KEY: MLflow's user with a policy for the bucket alone, keys on stdin, attached once", () => {
    const secret = "mlflow-key-Pa55:word/0123456789";
    const result = run({ ...env, MLFLOW_S3_ACCESS_KEY: "mlflow-artifacts", MLFLOW_S3_SECRET_KEY: secret });
    expect(result.status, result.output).toBe(0);
    expect(result.calls.slice(3).map((c) => c.argv[0] === "admin" ? c.argv.slice(0, 4) : c.argv)).toEqual([
      ["admin", "policy", "create", "target"],
      ["admin", "user", "add", "target"],
      ["admin", "user", "info", "target"],
      ["admin", "policy", "attach", "target"],
    ]);
    expect(result.calls[4].stdin).toBe(`mlflow-artifacts ${secret}`);
    expect(result.calls.flatMap((c) => c.argv).join(" ")).not.toContain(secret);
    expect(result.output).not.toContain(secret);
    const policy = JSON.parse(result.policy!);
    expect(policy.Statement.flatMap((s: { Resource: string[] }) => s.Resource).sort()).toEqual(["arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/*"]);
    expect(result.output).toMatch(/user mlflow-artifacts may use s3:\/\/mlflow-artifacts and nothing else/);
    const again = run({ ...env, MLFLOW_S3_ACCESS_KEY: "mlflow-artifacts", MLFLOW_S3_SECRET_KEY: secret, FAKE_MC_USER_INFO: "AccessKey: mlflow-artifacts\nPolicyName: mlflow-bucket\n" });
    expect(again.status, again.output).toBe(0);
    expect(again.calls.some((c) => c.argv.slice(0, 3).join(" ") === "admin policy attach")).toBe(false);
    // Without them: no user, as before.
    expect(run(env).calls.some((c) => c.argv[0] === "admin")).toBe(false);
  });

  it.each([
    [{ MLFLOW_S3_ACCESS_KEY: "mlflow-artifacts" }, /set both MLFLOW_S3_ACCESS_KEY and MLFLOW_S3_SECRET_KEY/],
    [{ MLFLOW_S3_SECRET_KEY: "0123456789abcdef" }, /set both MLFLOW_S3_ACCESS_KEY and MLFLOW_S3_SECRET_KEY/],
    [{ MLFLOW_S3_ACCESS_KEY: "m", MLFLOW_S3_SECRET_KEY: "short" }, /MLFLOW_S3_SECRET_KEY must be 8 to 40 characters/],
    [{ MINIO_ROOT_PASSWORD: "" }, /MINIO_ROOT_PASSWORD is not set .* set MINIO_ROOT_PASSWORD/],
    [{ MINIO_ROOT_PASSWORD_FILE: "/x" }, /both MINIO_ROOT_PASSWORD and MINIO_ROOT_PASSWORD_FILE are set/],
    [{ MLFLOW_BUCKET: "My_Bucket" }, /MLFLOW_BUCKET must be an S3 bucket name/],
    [{ MINIO_ROOT_USER: "" }, /set MINIO_ROOT_USER/],
  ])("refuses %o without calling mc", (override, message) => {
    const result = run({ ...env, ...override });
    expect(result.status).not.toBe(0);
    expect(result.output.trim().split("\n")).toHaveLength(1);
    expect(result.output).toMatch(message);
    expect(result.calls).toEqual([]);
  });
});

describe.skipIf(!shellcheck)("createbuckets/create-bucket.sh static analysis", () => {
  it("is clean POSIX sh for shellcheck", () => {
    const result = spawnSync(shellcheck!, ["--shell=sh", "--severity=style", SCRIPT], { encoding: "utf8" });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
