// Runs mlflow/docker-entrypoint.sh for real with dash (the /bin/sh of the MLflow image), with a fake `mlflow` that
// records the argv and environment it was exec'd with, and a temporary secrets directory.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findBinary, requireBinary } from "./support/binaries.ts";
import { makeTempDir } from "./support/tmp.ts";

const ENTRYPOINT = resolve(import.meta.dirname, "../mlflow/docker-entrypoint.sh");
const shell = findBinary("dash") ?? requireBinary("sh", "dash");
const python = requireBinary("python3", "python3");
const shellcheck = requireBinary("shellcheck", "shellcheck");

// Every character that breaks a URI when left raw, plus a space and a non-ASCII one.
const PG_PASSWORD = "p@ss:w/rd%#?&=+ ;[x]é'!";
const MINIO_PASSWORD = "minio-S3cr3t:with/odd@chars";

interface Run {
  status: number | null;
  output: string;
  /** argv the fake mlflow received, or undefined when it was never exec'd. */
  argv?: string[];
  env?: Record<string, string>;
  /** What the fake mlflow.db.upgrade received (db-upgrade mode). */
  upgrade?: { args: string[]; sysArgv: string[] };
}

let tmp: ReturnType<typeof makeTempDir>;
let fakeBin: string;
let fakePython: string;
let pythonDir: string;
let runCount = 0;

beforeAll(() => {
  tmp = makeTempDir("entrypoint");
  fakeBin = join(tmp.dir, "bin");
  mkdirSync(fakeBin);
  // The interpreter itself rather than a version-manager shim (pyenv's cost seconds per call).
  pythonDir = dirname(spawnSync(python!, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).stdout.trim());
  // The fake mlflow writes its argv and environment NUL-separated, so any byte survives.
  writeFileSync(
    join(fakeBin, "mlflow"),
    '#!/bin/sh\nprintf \'%s\\0\' "$@" > "$FAKE_OUT.argv"\nenv -0 > "$FAKE_OUT.env"\n',
  );
  chmodSync(join(fakeBin, "mlflow"), 0o755);
  // Fake sqlalchemy and mlflow.db for db-upgrade: the real ones live in the image only.
  fakePython = join(tmp.dir, "py");
  mkdirSync(join(fakePython, "sqlalchemy"), { recursive: true });
  mkdirSync(join(fakePython, "mlflow"), { recursive: true });
  writeFileSync(
    join(fakePython, "sqlalchemy", "__init__.py"),
    [
      "import os",
      "class _Engine:",
      "    def __init__(self, uri): self.uri = uri",
      "    def dispose(self): pass",
      "class _Inspector:",
      "    def has_table(self, name): return name == 'alembic_version' and os.environ.get('FAKE_HAS_SCHEMA') == '1'",
      "def create_engine(uri): return _Engine(uri)",
      "def inspect(engine): return _Inspector()",
      "",
    ].join("\n"),
  );
  writeFileSync(join(fakePython, "mlflow", "__init__.py"), "");
  writeFileSync(
    join(fakePython, "mlflow", "db.py"),
    [
      "import json, os, sys",
      "class _Upgrade:",
      "    def main(self, args, prog_name, standalone_mode):",
      "        with open(os.environ['FAKE_OUT'] + '.upgrade', 'w') as f:",
      "            json.dump({'args': args, 'sysArgv': sys.argv}, f)",
      "upgrade = _Upgrade()",
      "",
    ].join("\n"),
  );
});

afterAll(() => tmp?.cleanup());

function secretsDir(files: Record<string, string>): string {
  const dir = join(tmp.dir, `secrets-${++runCount}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content, { mode: 0o600 });
  return dir;
}

const defaultSecrets = () => ({ postgres_password: `${PG_PASSWORD}\n`, minio_root_password: `${MINIO_PASSWORD}\n` });

const baseEnv = () => ({
  POSTGRES_USER: "mlflow",
  POSTGRES_DB: "mlflow",
  AWS_ACCESS_KEY_ID: "mlflow",
  MLFLOW_BUCKET: "mlflow-artifacts-test",
  DOMAIN: "mlflow.example.com",
  MLFLOW_WORKERS: "3",
});

function run(args: string[], env: Record<string, string | undefined>, secrets = secretsDir(defaultSecrets())): Run {
  const out = join(tmp.dir, `run-${++runCount}`);
  // A clean environment, so nothing from the developer's shell leaks in.
  const finalEnv: Record<string, string> = {
    HOME: tmp.dir,
    PATH: `${fakeBin}:${pythonDir}:/usr/bin:/bin`,
    PYTHONPATH: fakePython,
    MLFLOW_SECRETS_DIR: secrets,
    FAKE_OUT: out,
  };
  for (const [key, value] of Object.entries(env)) if (value !== undefined) finalEnv[key] = value;
  const result = spawnSync(shell!, [ENTRYPOINT, ...args], { env: finalEnv, encoding: "utf8", timeout: 30_000 });
  const parsed: Run = { status: result.status, output: `${result.stdout}${result.stderr}` };
  if (existsSync(`${out}.argv`)) {
    parsed.argv = readFileSync(`${out}.argv`, "utf8").split("\0").slice(0, -1);
    parsed.env = Object.fromEntries(
      readFileSync(`${out}.env`, "utf8")
        .split("\0")
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
  }
  if (existsSync(`${out}.upgrade`)) parsed.upgrade = JSON.parse(readFileSync(`${out}.upgrade`, "utf8"));
  return parsed;
}

/** The value of `--flag` in an argv. */
function flag(argv: string[], name: string): string | undefined {
  const index = argv.indexOf(name);
  return index >= 0 ? argv[index + 1] : undefined;
}

function expectNoSecretIn(text: string) {
  for (const secret of [PG_PASSWORD, MINIO_PASSWORD, encodeURIComponent(PG_PASSWORD)]) {
    expect(text).not.toContain(secret);
  }
  // The percent-encoded form as the entrypoint writes it (every reserved character encoded).
  expect(text).not.toMatch(/p%40ss/i);
}

describe.skipIf(!shell || !python)("mlflow/docker-entrypoint.sh", () => {
  it("execs mlflow server with the database URI in the environment, password URL-encoded", () => {
    const result = run([], baseEnv());
    expect(result.status, result.output).toBe(0);
    expect(result.argv?.[0]).toBe("server");

    const uri = result.env!.MLFLOW_BACKEND_STORE_URI;
    expect(uri.startsWith("postgresql+psycopg2://")).toBe(true);
    const parsed = new URL(uri.replace(/^postgresql\+psycopg2:/, "http:"));
    expect(decodeURIComponent(parsed.username)).toBe("mlflow");
    expect(decodeURIComponent(parsed.password)).toBe(PG_PASSWORD); // trailing newline of the file dropped
    expect(parsed.password).toMatch(/^[A-Za-z0-9%._~-]+$/); // nothing reserved left raw
    expect(parsed.hostname).toBe("db");
    expect(parsed.port).toBe("5432");
    expect(parsed.pathname).toBe("/mlflow");
    // The secret in plain form is not handed on: only the URI carries it.
    expect(result.env).not.toHaveProperty("POSTGRES_PASSWORD");
    expect(result.env).not.toHaveProperty("POSTGRES_PASSWORD_FILE");
  });

  it("serves artifacts from the bucket through MLflow, with the S3 settings for MinIO", () => {
    const result = run([], baseEnv());
    expect(result.status, result.output).toBe(0);
    const argv = result.argv!;
    expect(flag(argv, "--host")).toBe("0.0.0.0");
    expect(flag(argv, "--port")).toBe("5000");
    expect(argv).toContain("--serve-artifacts");
    expect(flag(argv, "--artifacts-destination")).toBe("s3://mlflow-artifacts-test/");
    expect(flag(argv, "--default-artifact-root")).toBe("mlflow-artifacts:/");
    expect(flag(argv, "--workers")).toBe("3");
    expect(flag(argv, "--uvicorn-opts")).toMatch(/--timeout-keep-alive \d+/);
    expect(argv).not.toContain("--backend-store-uri");
    expect(result.env!.AWS_ACCESS_KEY_ID).toBe("mlflow");
    expect(result.env!.AWS_SECRET_ACCESS_KEY).toBe(MINIO_PASSWORD);
    expect(result.env!.MLFLOW_S3_ENDPOINT_URL).toBe("http://minio:9000");
  });

  it("never prints a secret or passes one as an argument", () => {
    const result = run([], baseEnv());
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain("backend store:"); // it does log, just not the secret
    expectNoSecretIn(result.output);
    expectNoSecretIn(result.argv!.join("\n"));
  });

  it("derives the allowed Host headers from DOMAIN", () => {
    const result = run([], baseEnv());
    const hosts = result.env!.MLFLOW_SERVER_ALLOWED_HOSTS.split(",");
    for (const host of ["mlflow.example.com", "mlflow.example.com:*", "localhost:*", "127.0.0.1:*", "mlflow", "mlflow:*"]) {
      expect(hosts).toContain(host);
    }
    expect(hosts).not.toContain("*");
  });

  it("keeps MLFLOW_SERVER_ALLOWED_HOSTS when it is set explicitly", () => {
    const result = run([], { ...baseEnv(), MLFLOW_SERVER_ALLOWED_HOSTS: "a.example,b.example:8443" });
    expect(result.status, result.output).toBe(0);
    expect(result.env!.MLFLOW_SERVER_ALLOWED_HOSTS).toBe("a.example,b.example:8443");
  });

  it("passes extra server options on, after its own", () => {
    const result = run(["--static-prefix", "/mlflow"], baseEnv());
    expect(result.status, result.output).toBe(0);
    expect(result.argv![0]).toBe("server");
    expect(result.argv!.slice(-2)).toEqual(["--static-prefix", "/mlflow"]);
  });

  it("refuses a password given both as VAR and VAR_FILE", () => {
    const secrets = secretsDir(defaultSecrets());
    const result = run([], { ...baseEnv(), POSTGRES_PASSWORD: "x", POSTGRES_PASSWORD_FILE: join(secrets, "postgres_password") }, secrets);
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set/);
    expect(result.argv).toBeUndefined();

    const s3 = run([], { ...baseEnv(), AWS_SECRET_ACCESS_KEY: "x", AWS_SECRET_ACCESS_KEY_FILE: join(secrets, "minio_root_password") }, secrets);
    expect(s3.status).not.toBe(0);
    expect(s3.output).toMatch(/both AWS_SECRET_ACCESS_KEY and AWS_SECRET_ACCESS_KEY_FILE are set/);
    expect(s3.argv).toBeUndefined();
  });

  it("fails with a clear message when a secret file is missing, naming the file and the fix", () => {
    const secrets = secretsDir({ minio_root_password: MINIO_PASSWORD });
    const result = run([], baseEnv(), secrets);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain(join(secrets, "postgres_password"));
    expect(result.output).toContain("npm run bootstrap");
    expect(result.output.trim().split("\n")).toHaveLength(1); // one line, no trace
    expect(result.argv).toBeUndefined();
  });

  it("reads the file named by *_FILE instead of the default location", () => {
    const other = secretsDir({ pw: "other-password" });
    const result = run([], { ...baseEnv(), POSTGRES_PASSWORD_FILE: join(other, "pw") });
    expect(result.status, result.output).toBe(0);
    expect(decodeURIComponent(new URL(result.env!.MLFLOW_BACKEND_STORE_URI.replace(/^[^:]+:/, "http:")).password)).toBe("other-password");
  });

  it("refuses an empty secret file", () => {
    const result = run([], baseEnv(), secretsDir({ postgres_password: "\n", minio_root_password: MINIO_PASSWORD }));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/postgres_password is empty/);
    expect(result.argv).toBeUndefined();
  });

  it("refuses a DOMAIN that is not a bare host name, and a bad worker count", () => {
    const domain = run([], { ...baseEnv(), DOMAIN: "https://mlflow.example.com/" });
    expect(domain.status).not.toBe(0);
    expect(domain.output).toMatch(/DOMAIN must be a bare host name/);
    expect(domain.argv).toBeUndefined();

    const workers = run([], { ...baseEnv(), MLFLOW_WORKERS: "two" });
    expect(workers.status).not.toBe(0);
    expect(workers.output).toMatch(/MLFLOW_WORKERS must be a positive whole number/);
    expect(workers.argv).toBeUndefined();
  });

  it("runs other commands with the same environment", () => {
    const result = run(["mlflow", "gc"], baseEnv());
    expect(result.status, result.output).toBe(0);
    expect(result.argv).toEqual(["gc"]);
    expect(result.env!.MLFLOW_BACKEND_STORE_URI).toMatch(/^postgresql\+psycopg2:\/\/mlflow:/);
  });

  it("db-upgrade upgrades an existing schema, passing the URI inside Python, not as an argument", () => {
    const result = run(["db-upgrade"], { ...baseEnv(), FAKE_HAS_SCHEMA: "1" });
    expect(result.status, result.output).toBe(0);
    expect(result.upgrade?.args).toHaveLength(1);
    expect(decodeURIComponent(new URL(result.upgrade!.args[0].replace(/^[^:]+:/, "http:")).password)).toBe(PG_PASSWORD);
    expectNoSecretIn(result.upgrade!.sysArgv.join("\n"));
    expectNoSecretIn(result.output);
  });

  it("db-upgrade leaves an empty database to the server's first start", () => {
    const result = run(["db-upgrade"], { ...baseEnv(), FAKE_HAS_SCHEMA: "0" });
    expect(result.status, result.output).toBe(0);
    expect(result.upgrade).toBeUndefined();
    expect(result.output).toMatch(/empty database/);
  });
});

// Platforms (Railway, Heroku, Render, Fly.io, Cloud Run) give no Compose secrets: everything is an environment variable.
describe.skipIf(!shell || !python)("mlflow/docker-entrypoint.sh configured from the environment alone", () => {
  const S3_KEY = "aws-S3cr3t/with+odd=chars";
  const platformEnv = (extra: Record<string, string | undefined> = {}) => ({
    AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
    AWS_SECRET_ACCESS_KEY: S3_KEY,
    MLFLOW_BUCKET: "mlflow-artifacts-paas",
    ...extra,
  });
  const runPlatform = (extra: Record<string, string | undefined>, args: string[] = []) => run(args, platformEnv(extra), secretsDir({}));
  const backend = (result: Run) => {
    const uri = result.env!.MLFLOW_BACKEND_STORE_URI;
    const url = new URL(uri.replace(/^[^:]+:/, "http:"));
    return { uri, scheme: uri.slice(0, uri.indexOf(":")), url, password: decodeURIComponent(url.password) };
  };

  it("turns postgres:// (Heroku, Railway) into postgresql+psycopg2:// and keeps every part", () => {
    const result = runPlatform({ DATABASE_URL: "postgres://u7x:pw123abc@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d8k2" });
    expect(result.status, result.output).toBe(0);
    expect(result.env!.MLFLOW_BACKEND_STORE_URI).toBe("postgresql+psycopg2://u7x:pw123abc@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d8k2");
    expect(result.env).not.toHaveProperty("DATABASE_URL"); // only the URI carries the password on
  });

  it("accepts postgresql:// and DB_URL (Railway's template name), and keeps sslmode and other parameters", () => {
    const result = runPlatform({ DB_URL: "postgresql://mlflow:secretpw@postgres.railway.internal:5432/railway?sslmode=require&connect_timeout=10" });
    expect(result.status, result.output).toBe(0);
    expect(result.env!.MLFLOW_BACKEND_STORE_URI).toBe(
      "postgresql+psycopg2://mlflow:secretpw@postgres.railway.internal:5432/railway?sslmode=require&connect_timeout=10",
    );
    expect(result.env).not.toHaveProperty("DB_URL");
    expect(result.output).toContain("?sslmode=require&connect_timeout=10");
  });

  it("encodes a raw password with special characters, and leaves an already encoded one as it is", () => {
    for (const password of [PG_PASSWORD, encodeURIComponent(PG_PASSWORD)]) {
      const result = runPlatform({ DATABASE_URL: `postgres://mlflow:${password}@db.example.com:6543/mlflow?sslmode=require` });
      expect(result.status, result.output).toBe(0);
      const { scheme, url, password: decoded } = backend(result);
      expect(scheme).toBe("postgresql+psycopg2");
      expect(decoded).toBe(PG_PASSWORD);
      expect(url.password).toMatch(/^[A-Za-z0-9%._~-]+$/);
      expect(url.hostname).toBe("db.example.com");
      expect(url.port).toBe("6543");
      expect(url.pathname).toBe("/mlflow");
      expect(url.search).toBe("?sslmode=require");
      expectNoSecretIn(result.output);
      expectNoSecretIn(result.argv!.join("\n"));
      expect(result.output).toContain("postgresql+psycopg2://mlflow:***@db.example.com:6543/mlflow?sslmode=require");
    }
  });

  it("hides a password given as a query parameter in the log", () => {
    const result = runPlatform({ DATABASE_URL: "postgres://db.example.com/mlflow?user=mlflow&password=hunter2-query&sslmode=verify-full" });
    expect(result.status, result.output).toBe(0);
    expect(result.env!.MLFLOW_BACKEND_STORE_URI).toContain("password=hunter2-query");
    expect(result.output).not.toContain("hunter2-query");
    expect(result.output).toContain("password=***&sslmode=verify-full");
  });

  it("lets the Compose secret win over DATABASE_URL", () => {
    const result = run([], { ...baseEnv(), DATABASE_URL: "postgres://other:pw@elsewhere:5432/x" });
    expect(result.status, result.output).toBe(0);
    expect(backend(result).url.hostname).toBe("db");
    expect(backend(result).password).toBe(PG_PASSWORD);
    expect(result.output).toMatch(/DATABASE_URL is ignored/);
  });

  it("refuses another database scheme or a URL without a database, in one line", () => {
    for (const [url, message] of [
      ["mysql://u:p@h/db", /only PostgreSQL is supported/],
      ["postgres://u:p@h:5432/", /names no database/],
      ["not a url", /expected postgres:\/\//],
    ] as const) {
      const result = runPlatform({ DATABASE_URL: url });
      expect(result.status).not.toBe(0);
      expect(result.output).toMatch(message);
      expect(result.output.trim().split("\n")).toHaveLength(1);
      expect(result.argv).toBeUndefined();
    }
  });

  it("refuses to start without a database URL, saying what to set", () => {
    const result = runPlatform({});
    expect(result.status).not.toBe(0);
    expect(result.output.trim().split("\n")).toHaveLength(1);
    expect(result.output).toMatch(/no database: set DATABASE_URL .*MLFLOW_ALLOW_SQLITE=true/);
    expect(result.argv).toBeUndefined();
  });

  it("uses SQLite and local artifacts only with MLFLOW_ALLOW_SQLITE=true, and says they are lost on restart", () => {
    const dataDir = join(tmp.dir, `data-${++runCount}`);
    const result = run([], { MLFLOW_ALLOW_SQLITE: "true", MLFLOW_DATA_DIR: dataDir }, secretsDir({}));
    expect(result.status, result.output).toBe(0);
    expect(result.env!.MLFLOW_BACKEND_STORE_URI).toBe(`sqlite:///${dataDir}/mlflow.db`);
    expect(flag(result.argv!, "--artifacts-destination")).toBe(`${dataDir}/artifacts`);
    expect(existsSync(`${dataDir}/artifacts`)).toBe(true);
    expect(result.output).toMatch(/LOST when/);

    const notTrue = run([], { MLFLOW_ALLOW_SQLITE: "yes" }, secretsDir({}));
    expect(notTrue.status).not.toBe(0);
    expect(notTrue.argv).toBeUndefined();
  });

  it("refuses a database without an artifact store unless MLFLOW_ALLOW_SQLITE=true", () => {
    const result = run([], { DATABASE_URL: "postgres://u:p@h:5432/db" }, secretsDir({}));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/no artifact store: set MLFLOW_BUCKET/);
    expect(result.argv).toBeUndefined();
  });

  it("takes S3 from the environment: AWS S3 itself without an endpoint, else the endpoint given", () => {
    const aws = runPlatform({ DATABASE_URL: "postgres://u:p@h:5432/db", AWS_DEFAULT_REGION: "eu-west-1" });
    expect(aws.status, aws.output).toBe(0);
    expect(aws.env).not.toHaveProperty("MLFLOW_S3_ENDPOINT_URL");
    expect(aws.env!.AWS_SECRET_ACCESS_KEY).toBe(S3_KEY);
    expect(flag(aws.argv!, "--artifacts-destination")).toBe("s3://mlflow-artifacts-paas/");
    expect(aws.output).not.toContain(S3_KEY);

    const custom = runPlatform({ DATABASE_URL: "postgres://u:p@h:5432/db", MLFLOW_S3_ENDPOINT_URL: "https://s3.example.com" });
    expect(custom.env!.MLFLOW_S3_ENDPOINT_URL).toBe("https://s3.example.com");

    // Railway's bucket variables (AWS SDK names) work without renaming.
    const railway = run([], {
      DATABASE_URL: "postgres://u:p@h:5432/db",
      AWS_ACCESS_KEY_ID: "tid_x",
      AWS_SECRET_ACCESS_KEY: S3_KEY,
      AWS_ENDPOINT_URL: "https://storage.railway.app",
      AWS_S3_BUCKET_NAME: "mlflow-abc123",
    }, secretsDir({}));
    expect(railway.status, railway.output).toBe(0);
    expect(railway.env!.MLFLOW_S3_ENDPOINT_URL).toBe("https://storage.railway.app");
    expect(flag(railway.argv!, "--artifacts-destination")).toBe("s3://mlflow-abc123/");
  });

  it("names the variable to set when the S3 key is missing", () => {
    const result = run([], { DATABASE_URL: "postgres://u:p@h:5432/db", AWS_ACCESS_KEY_ID: "x", MLFLOW_BUCKET: "b" }, secretsDir({}));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/error: .*set AWS_SECRET_ACCESS_KEY/);
    expect(result.output.split("\n").filter((line) => line.includes("error:"))).toHaveLength(1);
    expect(result.argv).toBeUndefined();
  });

  it("listens on PORT (MLFLOW_PORT and MLFLOW_HOST win) and refuses a port that is not a number", () => {
    const env = { DATABASE_URL: "postgres://u:p@h:5432/db" };
    const port = runPlatform({ ...env, PORT: "8123" });
    expect(flag(port.argv!, "--port")).toBe("8123");
    expect(flag(port.argv!, "--host")).toBe("0.0.0.0");
    const inner = runPlatform({ ...env, PORT: "8123", MLFLOW_PORT: "5001", MLFLOW_HOST: "::" });
    expect(flag(inner.argv!, "--port")).toBe("5001");
    expect(flag(inner.argv!, "--host")).toBe("::");
    const bad = runPlatform({ ...env, PORT: "80a" });
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/must be a port number/);
  });

  it("writes an AWS config file for MLFLOW_S3_ADDRESSING_STYLE (boto3 reads the style only from there)", () => {
    const result = runPlatform({ DATABASE_URL: "postgres://u:p@h:5432/db", MLFLOW_S3_ADDRESSING_STYLE: "virtual", TMPDIR: tmp.dir });
    expect(result.status, result.output).toBe(0);
    expect(readFileSync(result.env!.AWS_CONFIG_FILE, "utf8")).toBe("[default]\ns3 =\n    addressing_style = virtual\n");
    const bad = runPlatform({ DATABASE_URL: "postgres://u:p@h:5432/db", MLFLOW_S3_ADDRESSING_STYLE: "dns" });
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/MLFLOW_S3_ADDRESSING_STYLE must be virtual or path/);
  });

  it("allows the platform's public host names (Railway, Render, Fly.io, Heroku) next to DOMAIN", () => {
    const result = runPlatform({
      DATABASE_URL: "postgres://u:p@h:5432/db",
      RAILWAY_PUBLIC_DOMAIN: "mlflow-production.up.railway.app",
      RENDER_EXTERNAL_HOSTNAME: "mlflow.onrender.com",
      FLY_APP_NAME: "my-mlflow",
      HEROKU_APP_DEFAULT_DOMAIN_NAME: "my-mlflow-1a2b3c.herokuapp.com",
      DOMAIN: "mlflow.example.com",
    });
    expect(result.status, result.output).toBe(0);
    const hosts = result.env!.MLFLOW_SERVER_ALLOWED_HOSTS.split(",");
    for (const host of ["mlflow-production.up.railway.app", "mlflow.onrender.com", "my-mlflow.fly.dev", "my-mlflow-1a2b3c.herokuapp.com", "mlflow.example.com", "mlflow.example.com:*"]) {
      expect(hosts).toContain(host);
    }
    const bad = runPlatform({ DATABASE_URL: "postgres://u:p@h:5432/db", RAILWAY_PUBLIC_DOMAIN: "https://x.up.railway.app" });
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/RAILWAY_PUBLIC_DOMAIN must be a bare host name/);
  });
});

describe.skipIf(!shellcheck)("mlflow/docker-entrypoint.sh static analysis", () => {
  it("is clean POSIX sh for shellcheck", () => {
    const result = spawnSync(shellcheck!, ["--shell=sh", "--severity=style", ENTRYPOINT], { encoding: "utf8" });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
