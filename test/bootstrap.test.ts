// The real CLI (`tsx scripts/bootstrap.ts --dir TMP`) in a temporary copy of the project holding only .env.example.
import bcrypt from "bcryptjs";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { caddyGuardFile, userPrefixPattern } from "../scripts/lib/caddy-user-guard.ts";
import { caddyGuardFor } from "../scripts/lib/bootstrap.ts";
import { parseEnv } from "../scripts/lib/envfile.ts";
import { bcryptCostFor } from "../scripts/lib/password-hashes.ts";
import { estimateGuessesLog10 } from "../scripts/lib/passwords.ts";
import { requireBinary } from "./support/binaries.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const CLI = join(ROOT, "scripts", "bootstrap.ts");
const SECRET_NAMES = ["minio_root_password", "mlflow_s3_secret_key", "postgres_password", "proxy_password.mlflow", "proxy_users.caddy", "proxy_users.caddy_guard", "proxy_users.htpasswd"];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without a terminal (stdin, stdout and stderr are pipes), as CI would. */
// `node --import tsx` is what the tsx command runs, minus one extra process per run.
const NODE_ARGS = ["--import", "tsx", CLI];
const SPAWN = { cwd: ROOT, env: { ...process.env, CI: "true" } };

function bootstrap(dir: string, args: string[] = [], input = ""): Run {
  const result = spawnSync(process.execPath, [...NODE_ARGS, "--dir", dir, ...args], { ...SPAWN, input, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function bootstrapAsync(dir: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...NODE_ARGS, "--dir", dir, ...args], { ...SPAWN, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** Every file under `dir`: content hash, mtime and mode, to prove a run changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      const stat = statSync(path);
      if (entry.isDirectory()) {
        out[`${relative(dir, path)}/`] = (stat.mode & 0o777).toString(8);
        walk(path);
      } else {
        const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
        out[relative(dir, path)] = `${sha} ${stat.mtimeMs} ${(stat.mode & 0o777).toString(8)}`;
      }
    }
  };
  walk(dir);
  return out;
}

const read = (dir: string, name: string) => readFileSync(join(dir, "secrets", name), "utf8");

function userLine(dir: string, file: string, user: string): string | undefined {
  const sep = file.endsWith(".caddy") ? " " : ":";
  return read(dir, file)
    .split("\n")
    .find((line) => line.startsWith(`${user}${sep}`));
}

/** nginx accepts these salted schemes in auth_basic_user_file; {PLAIN} and unsalted {SHA} would be a regression. */
const NGINX_SCHEME = /^(\{SSHA\}|\$apr1\$|\$5\$|\$6\$|\$2[aby]\$)/;

function expectLoginWorks(dir: string, user: string, password: string) {
  const caddy = userLine(dir, "proxy_users.caddy", user);
  expect(caddy).toMatch(new RegExp(`^${user} \\$2[aby]\\$\\d\\d\\$[./A-Za-z0-9]{53}$`));
  expect(bcrypt.compareSync(password, caddy!.split(" ")[1])).toBe(true);
  expect(bcrypt.compareSync(`${password}x`, caddy!.split(" ")[1])).toBe(false);

  const nginx = userLine(dir, "proxy_users.htpasswd", user);
  const hash = nginx!.slice(user.length + 1);
  expect(hash).toMatch(NGINX_SCHEME);
  if (hash.startsWith("{SSHA}")) {
    const raw = Buffer.from(hash.slice("{SSHA}".length), "base64");
    const digest = createHash("sha1").update(password).update(raw.subarray(20)).digest();
    expect(digest.equals(raw.subarray(0, 20))).toBe(true);
  } else if (hash.startsWith("$2")) {
    expect(bcrypt.compareSync(password, hash)).toBe(true);
    expect(bcrypt.compareSync(`${password}x`, hash)).toBe(false);
  } else {
    // htpasswd -v reads the password from stdin with -i, never from the command line.
    const htpasswd = requireBinary("htpasswd", "apache2-utils");
    if (htpasswd) {
      const check = spawnSync(htpasswd, ["-v", "-i", join(dir, "secrets", "proxy_users.htpasswd"), user], { input: password });
      expect(check.status).toBe(0);
    }
  }
}

function expectOneLineError(run: Run) {
  expect(run.status).not.toBe(0);
  expect(run.stdout).toBe("");
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bootstrap: /);
  expect(run.stderr).not.toMatch(/\n\s+at |Error:/);
}

// One bootstrapped project, copied (with mtimes and modes) into tests that start from an existing installation.
let template: { dir: string; cleanup: () => void };
beforeAll(() => {
  template = makeTempDir("bootstrap-template");
  copyFileSync(join(ROOT, ".env.example"), join(template.dir, ".env.example"));
  const run = bootstrap(template.dir);
  if (run.status !== 0) throw new Error(`bootstrap failed: ${run.stderr}`);
});
afterAll(() => template.cleanup());

/** Makes the test's directory a copy of an already bootstrapped project. */
function bootstrapped(): void {
  rmSync(dir, { recursive: true, force: true });
  cpSync(template.dir, dir, { recursive: true, preserveTimestamps: true });
  // Node 22's cpSync creates directories with the umask's mode instead of the source's: copy the modes over.
  for (const entry of readdirSync(template.dir, { recursive: true, encoding: "utf8" })) {
    chmodSync(join(dir, entry), statSync(join(template.dir, entry)).mode & 0o777);
  }
  chmodSync(dir, statSync(template.dir).mode & 0o777);
}

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir("bootstrap"));
  copyFileSync(join(ROOT, ".env.example"), join(dir, ".env.example"));
});
afterEach(() => cleanup());

describe("bootstrap: a fresh run", () => {
  it("creates .env with DOMAIN and every secret with private modes, and never prints the password without a terminal", () => {
    const run = bootstrap(dir, ["--domain", "mlflow.example.com"]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);

    const example = readFileSync(join(dir, ".env.example"), "utf8");
    const env = readFileSync(join(dir, ".env"), "utf8");
    expect(parseEnv(env)).toEqual({ ...parseEnv(example), DOMAIN: "mlflow.example.com" });
    expect(env.split("\n").filter((line) => line.startsWith("#"))).toEqual(example.split("\n").filter((line) => line.startsWith("#")));

    expect(statSync(join(dir, "secrets")).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dir, "secrets")).sort()).toEqual(SECRET_NAMES);
    for (const name of SECRET_NAMES) expect(statSync(join(dir, "secrets", name)).mode & 0o777).toBe(0o600);

    const passwords = ["postgres_password", "minio_root_password", "proxy_password.mlflow", "mlflow_s3_secret_key"].map((name) => read(dir, name));
    for (const password of passwords) expect(password).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(new Set(passwords).size).toBe(4);
    // MinIO/Silo accept IAM secret keys of 8 to 40 characters.
    expect(read(dir, "mlflow_s3_secret_key").trim().length).toBeLessThanOrEqual(40);
    expectLoginWorks(dir, "mlflow", passwords[2]);
    // A generated password (240 bits): the cheapest bcrypt for Caddy and {SSHA} for nginx, as brute force is hopeless.
    expect(userLine(dir, "proxy_users.caddy", "mlflow")).toMatch(/^mlflow \$2[aby]\$04\$/);
    expect(userLine(dir, "proxy_users.htpasswd", "mlflow")).toMatch(/^mlflow:\{SSHA\}/);

    for (const name of [".env", ...SECRET_NAMES]) expect(run.stdout).toMatch(new RegExp(`created +${name === ".env" ? "\\.env" : `secrets/${name.replace(".", "\\.")}`}\\n`));
    expect(run.stdout).toContain("https://mlflow.example.com");
    expect(run.stdout).toContain("the password is in secrets/proxy_password.mlflow");
    expect(run.stdout).toContain("Next: Start the stack: docker compose up -d --wait");
    for (const password of passwords) expect(run.stdout + run.stderr).not.toContain(password);
  });

  it("uses http://localhost:PROXY_PORT locally and reports it in --json without any password", () => {
    const run = bootstrap(dir, ["--json"]);
    expect(run.status).toBe(0);
    const summary = JSON.parse(run.stdout);
    const port = parseEnv(readFileSync(join(dir, ".env.example"), "utf8")).PROXY_PORT;
    expect(summary).toMatchObject({ user: "mlflow", url: `http://localhost:${port}`, passwordFile: "secrets/proxy_password.mlflow", kept: [], rotated: [] });
    expect(summary.created.sort()).toEqual([".env", ...SECRET_NAMES.map((name) => `secrets/${name}`)].sort());
    for (const name of ["postgres_password", "minio_root_password", "proxy_password.mlflow"]) expect(run.stdout).not.toContain(read(dir, name));
  });

  // `script` (util-linux) gives the CLI a pseudo-terminal: stdout.isTTY is true in there.
  const onTerminal = (env: NodeJS.ProcessEnv) => {
    const script = requireBinary("script", "bsdutils");
    if (!script) return undefined;
    return spawnSync(script, ["-qec", `${TSX} ${CLI} --dir ${dir}`, "/dev/null"], { cwd: ROOT, env, encoding: "utf8" });
  };
  const withoutCi = () => Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "CI"));

  it("shows the new password once when stdout is a terminal", () => {
    const first = onTerminal(withoutCi());
    if (!first) return;
    expect(first.status).toBe(0);
    const password = read(dir, "proxy_password.mlflow");
    expect(first.stdout.split(password)).toHaveLength(2); // exactly once
    const second = onTerminal(withoutCi())!;
    expect(second.status).toBe(0);
    expect(second.stdout).toContain("kept");
    expect(second.stdout).not.toContain(password);
  });

  it.each(["true", "1", "gitlab"])("never shows it on a terminal when CI=%s", (ci) => {
    const run = onTerminal({ ...withoutCi(), CI: ci });
    if (!run) return;
    expect(run.status).toBe(0);
    const password = read(dir, "proxy_password.mlflow");
    expect(run.stdout).toContain("the password is in secrets/proxy_password.mlflow");
    expect(run.stdout).not.toContain(password);
    expect(run.stdout).not.toContain("shown only this once");
  });
});

describe("bootstrap: running again", () => {
  it("changes nothing (bytes, mtimes, modes) and says kept", () => {
    bootstrapped();
    const before = snapshot(dir);
    const again = bootstrap(dir);
    expect(again.status).toBe(0);
    expect(again.stderr).toBe("");
    expect(snapshot(dir)).toEqual(before);
    expect(again.stdout.match(/^ +kept +/gm)).toHaveLength(1 + SECRET_NAMES.length);
    expect(again.stdout).not.toMatch(/created|rotated|updated/);
  });

  it("leaves a hand-edited secret as it is", () => {
    bootstrapped();
    const edited = ["postgres_password", "minio_root_password", "mlflow_s3_secret_key", "proxy_password.mlflow"];
    for (const name of edited) writeFileSync(join(dir, "secrets", name), "GARBAGE\n");
    const before = snapshot(dir);
    const run = bootstrap(dir);
    expect(run.status).toBe(0);
    // Only the guard, derived from the files: the password file no longer is the generated password of the Caddy
    // hash, so the guard stops requiring its first characters (it must not lock out the login the hash still allows).
    const after = snapshot(dir);
    expect(Object.keys(after).filter((key) => before[key] !== after[key])).toEqual(["secrets/proxy_users.caddy_guard"]);
    expect(read(dir, "proxy_users.caddy_guard")).toBe(caddyGuardFile(read(dir, "proxy_users.caddy")));
    for (const name of edited) expect(read(dir, name)).toBe("GARBAGE\n");
    // The Caddy line no longer matches the hand-edited password file: the user is told how to fix it.
    expect(run.stderr).toMatch(/does not match secrets\/proxy_password\.mlflow.*--rotate proxy:mlflow --password-stdin/);
  });

  it("keeps lines it does not understand in a users file, adding the missing user's line from the password file", () => {
    bootstrapped();
    writeFileSync(join(dir, "secrets", "proxy_users.htpasswd"), "GARBAGE\n");
    const caddy = read(dir, "proxy_users.caddy");
    expect(bootstrap(dir).status).toBe(0);
    expect(read(dir, "proxy_users.htpasswd")).toMatch(/^GARBAGE\nmlflow:\S+\n$/);
    expect(read(dir, "proxy_users.caddy")).toBe(caddy);
    expectLoginWorks(dir, "mlflow", read(dir, "proxy_password.mlflow"));
  });

  it("recreates deleted hash lines from the existing password, without changing it", () => {
    bootstrapped();
    const password = read(dir, "proxy_password.mlflow");
    const caddy = read(dir, "proxy_users.caddy");
    rmSync(join(dir, "secrets", "proxy_users.htpasswd"));
    let run = bootstrap(dir);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/created +secrets\/proxy_users\.htpasswd/);
    expect(read(dir, "proxy_password.mlflow")).toBe(password);
    expect(read(dir, "proxy_users.caddy")).toBe(caddy);
    expectLoginWorks(dir, "mlflow", password);

    rmSync(join(dir, "secrets", "proxy_users.caddy"));
    writeFileSync(join(dir, "secrets", "proxy_users.htpasswd"), "someone:{SSHA}xyz\n"); // mlflow's line gone, another kept
    run = bootstrap(dir);
    expect(run.status).toBe(0);
    expect(read(dir, "proxy_password.mlflow")).toBe(password);
    expect(read(dir, "proxy_users.htpasswd")).toMatch(/^someone:\{SSHA\}xyz\nmlflow:/);
    expectLoginWorks(dir, "mlflow", password);
  });

  it("rebuilds the Caddy user guard from proxy_users.caddy on every run: created for an older install, repaired when edited", () => {
    bootstrapped();
    const guard = read(dir, "proxy_users.caddy_guard");
    const mlflow = new Map([["mlflow", read(dir, "proxy_password.mlflow").slice(0, 3)]]);
    // A generated password: the guard requires "mlflow:" and its first 3 characters (18 of its 240 bits).
    expect(guard).toBe(caddyGuardFile(read(dir, "proxy_users.caddy"), mlflow));
    expect(guard).toContain(`(?:${userPrefixPattern("mlflow", mlflow.get("mlflow"))})`);
    expect(guard).not.toContain("bWxmbG93O[g-v]"); // base64 of "mlflow:" and the range of the next character only
    // An install from before the guard: it appears, and the user is told to recreate the proxy.
    rmSync(join(dir, "secrets", "proxy_users.caddy_guard"));
    let run = bootstrap(dir);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/created +secrets\/proxy_users\.caddy_guard/);
    expect(run.stdout).toContain("docker compose up -d");
    expect(read(dir, "proxy_users.caddy_guard")).toBe(guard);
    expect(statSync(join(dir, "secrets", "proxy_users.caddy_guard")).mode & 0o777).toBe(0o600);
    // Edited by hand, or a user line added by hand: the next run makes it match the users file again.
    writeFileSync(join(dir, "secrets", "proxy_users.caddy_guard"), "@proxy_unknown_user expression false\n");
    writeFileSync(join(dir, "secrets", "proxy_users.caddy"), `${read(dir, "proxy_users.caddy")}bob $2b$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\n`);
    run = bootstrap(dir);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/updated +secrets\/proxy_users\.caddy_guard/);
    // bob has no password file: his user name only.
    expect(read(dir, "proxy_users.caddy_guard")).toBe(caddyGuardFile(read(dir, "proxy_users.caddy"), mlflow));
    expect(read(dir, "proxy_users.caddy_guard")).toContain("|Ym9iO[g-v])");
  });

  it("guard: a chosen password never reaches it, a rotation to a generated one updates it, a deleted password file leaves the name only", () => {
    bootstrapped();
    const chosen = "Kettle-orbit-9-lantern-Quay";
    let run = bootstrap(dir, ["--rotate", "proxy", "--password-stdin"], chosen);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/updated +secrets\/proxy_users\.caddy_guard/);
    let guard = read(dir, "proxy_users.caddy_guard");
    expect(guard).toBe(caddyGuardFile(read(dir, "proxy_users.caddy")));
    expect(guard).toContain("(?:bWxmbG93O[g-v])");
    for (let k = 1; k <= 4; k++) expect(guard).not.toContain(userPrefixPattern("mlflow", chosen.slice(0, k)).slice(0, 10));
    // Back to a generated password: the guard has its first characters again.
    run = bootstrap(dir, ["--rotate", "proxy:mlflow"]);
    expect(run.status, run.stderr).toBe(0);
    const generated = read(dir, "proxy_password.mlflow");
    expect(generated).toMatch(/^[A-Za-z0-9_-]{40}$/);
    guard = read(dir, "proxy_users.caddy_guard");
    expect(guard).toContain(`(?:${userPrefixPattern("mlflow", generated.slice(0, 3))})`);
    // Another generated user whose password file is deleted by hand: that user falls back to the name only.
    run = bootstrap(dir, ["--user", "alice"]);
    expect(run.status, run.stderr).toBe(0);
    const alice = read(dir, "proxy_password.alice");
    expect(read(dir, "proxy_users.caddy_guard")).toContain(`|${userPrefixPattern("alice", alice.slice(0, 3))})`);
    rmSync(join(dir, "secrets", "proxy_password.alice"));
    run = bootstrap(dir);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/updated +secrets\/proxy_users\.caddy_guard/);
    expect(run.stdout).toContain("docker compose up -d --force-recreate proxy");
    expect(read(dir, "proxy_users.caddy_guard")).toBe(caddyGuardFile(read(dir, "proxy_users.caddy"), new Map([["mlflow", generated.slice(0, 3)]])));
    expect(read(dir, "proxy_users.caddy_guard")).toContain(`|${userPrefixPattern("alice")})`);
  });

  it("recreates a deleted Postgres password but warns that an existing database still has the old one", () => {
    bootstrapped();
    const old = read(dir, "postgres_password");
    rmSync(join(dir, "secrets", "postgres_password"));
    const run = bootstrap(dir);
    expect(run.status).toBe(0);
    expect(read(dir, "postgres_password")).not.toBe(old);
    expect(run.stdout).toMatch(/created +secrets\/postgres_password/);
    expect(run.stderr).toMatch(/^bootstrap: warning: secrets\/postgres_password was missing .* still has the old password/);
  });

  it("refuses when a user has a hash line but the password file is gone", () => {
    bootstrapped();
    rmSync(join(dir, "secrets", "proxy_password.mlflow"));
    const before = snapshot(dir);
    const run = bootstrap(dir);
    expectOneLineError(run);
    expect(run.stderr).toContain("--rotate proxy:mlflow");
    expect(snapshot(dir)).toEqual(before);
  });

  it("adds a second user without touching the first", () => {
    bootstrapped();
    const before = snapshot(dir);
    const run = bootstrap(dir, ["--user", "alice"]);
    expect(run.status).toBe(0);
    const after = snapshot(dir);
    const changed = Object.keys({ ...before, ...after }).filter((key) => before[key] !== after[key]).sort();
    expect(changed).toEqual(["secrets/proxy_password.alice", "secrets/proxy_users.caddy", "secrets/proxy_users.caddy_guard", "secrets/proxy_users.htpasswd"]);
    const prefixes = new Map(["mlflow", "alice"].map((user) => [user, read(dir, `proxy_password.${user}`).slice(0, 3)]));
    expect(read(dir, "proxy_users.caddy_guard")).toBe(caddyGuardFile(read(dir, "proxy_users.caddy"), prefixes));
    const oldCaddy = readFileSync(join(dir, "secrets", "proxy_users.caddy"), "utf8");
    expect(oldCaddy.startsWith(userLine(dir, "proxy_users.caddy", "mlflow")!)).toBe(true);
    expectLoginWorks(dir, "mlflow", read(dir, "proxy_password.mlflow"));
    expectLoginWorks(dir, "alice", read(dir, "proxy_password.alice"));
    expect(run.stdout).toMatch(/updated +secrets\/proxy_users\.caddy/);
    expect(run.stdout).toContain("docker compose restart proxy");
  });

  it("lets concurrent runs race without a conflict: every secret is created once and the logins match", async () => {
    const runs = await Promise.all([bootstrapAsync(dir), bootstrapAsync(dir), bootstrapAsync(dir)]);
    for (const run of runs) expect(run.status, run.stderr).toBe(0);
    const all = runs.map((run) => run.stdout).join("");
    for (const name of ["postgres_password", "minio_root_password", "proxy_password.mlflow"]) {
      expect(all.match(new RegExp(`created +secrets/${name.replace(".", "\\.")}\\n`, "g"))).toHaveLength(1);
    }
    expect(readdirSync(join(dir, "secrets")).sort()).toEqual(SECRET_NAMES); // no temporary files left
    expectLoginWorks(dir, "mlflow", read(dir, "proxy_password.mlflow"));
  });

  it("keeps every user when 8 runs add users at once (a lock serialises the users files), 3 times over", async () => {
    bootstrapped();
    for (let round = 0; round < 3; round++) {
      const users = Array.from({ length: 8 }, (_, i) => `r${round}u${i}`);
      const runs = await Promise.all(users.map((user) => bootstrapAsync(dir, ["--user", user])));
      for (const run of runs) expect(run.status, run.stderr).toBe(0);
      const everyone = ["mlflow", ...Array.from({ length: round + 1 }, (_, r) => Array.from({ length: 8 }, (_, i) => `r${r}u${i}`)).flat()];
      for (const user of everyone) {
        expect(userLine(dir, "proxy_users.caddy", user), `${user} in proxy_users.caddy, round ${round}`).toBeDefined();
        expect(userLine(dir, "proxy_users.htpasswd", user), `${user} in proxy_users.htpasswd, round ${round}`).toBeDefined();
      }
      expect(read(dir, "proxy_users.caddy").trimEnd().split("\n")).toHaveLength(everyone.length);
      expect(read(dir, "proxy_users.caddy_guard"), `guard, round ${round}`).toBe(caddyGuardFor(dir));
      expect(read(dir, "proxy_users.htpasswd").trimEnd().split("\n")).toHaveLength(everyone.length);
    }
    for (const user of ["mlflow", "r0u0", "r2u7"]) expectLoginWorks(dir, user, read(dir, `proxy_password.${user}`));
    expect(existsSync(join(dir, ".bootstrap.lock"))).toBe(false);
  }, 300_000);

  // Issue 9: installations from before MLflow had its own S3 key get it by running bootstrap again.
  it("adds MLflow's S3 key to an existing installation that lacks it, and touches nothing else", () => {
    bootstrapped();
    rmSync(join(dir, "secrets", "mlflow_s3_secret_key"));
    const before = snapshot(dir);
    const run = bootstrap(dir);
    expect(run.status, run.stderr).toBe(0);
    const after = snapshot(dir);
    expect(Object.keys(after).filter((key) => before[key] !== after[key])).toEqual(["secrets/mlflow_s3_secret_key"]);
    expect(statSync(join(dir, "secrets", "mlflow_s3_secret_key")).mode & 0o777).toBe(0o600);
    expect(read(dir, "mlflow_s3_secret_key")).toMatch(/^[A-Za-z0-9_-]{40}\n?$/);
    expect(run.stdout).toMatch(/created +secrets\/mlflow_s3_secret_key\n/);
    expect(run.stdout).toContain("docker compose up -d --wait --force-recreate createbuckets mlflow");
    expect(run.stdout).not.toContain(read(dir, "mlflow_s3_secret_key").trim());
  });

  it("takes over the lock of a killed run", () => {
    bootstrapped();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    writeFileSync(join(dir, ".bootstrap.lock"), `${dead}\n`);
    const run = bootstrap(dir, ["--user", "alice"]);
    expect(run.status, run.stderr).toBe(0);
    expect(userLine(dir, "proxy_users.caddy", "alice")).toBeDefined();
    expect(existsSync(join(dir, ".bootstrap.lock"))).toBe(false);
  });
});

describe("bootstrap --rotate", () => {
  const changedFiles = (before: Record<string, string>, after: Record<string, string>) =>
    Object.keys({ ...before, ...after })
      .filter((key) => before[key] !== after[key])
      .sort();

  it("proxy:<user> replaces exactly that password and its two hash lines", () => {
    bootstrapped();
    const oldPassword = read(dir, "proxy_password.mlflow");
    const before = snapshot(dir);
    const run = bootstrap(dir, ["--rotate", "proxy:mlflow"]);
    expect(run.status).toBe(0);
    // The guard holds the first characters of the generated password: it changes with it.
    expect(changedFiles(before, snapshot(dir))).toEqual(["secrets/proxy_password.mlflow", "secrets/proxy_users.caddy", "secrets/proxy_users.caddy_guard", "secrets/proxy_users.htpasswd"]);
    const password = read(dir, "proxy_password.mlflow");
    expect(read(dir, "proxy_users.caddy_guard")).toContain(`(?:${userPrefixPattern("mlflow", password.slice(0, 3))})`);
    expect(password).not.toBe(oldPassword);
    expectLoginWorks(dir, "mlflow", password);
    expect(statSync(join(dir, "secrets", "proxy_password.mlflow")).mode & 0o777).toBe(0o600);
    expect(run.stdout).toMatch(/rotated +secrets\/proxy_password\.mlflow/);
    expect(run.stdout).toContain("docker compose restart proxy");
    expect(run.stdout).not.toContain(password);
  });

  it("mlflow-s3 replaces only MLflow's S3 key and says which containers to recreate", () => {
    bootstrapped();
    const old = read(dir, "mlflow_s3_secret_key");
    const before = snapshot(dir);
    const run = bootstrap(dir, ["--rotate", "mlflow-s3"]);
    expect(run.status, run.stderr).toBe(0);
    expect(changedFiles(before, snapshot(dir))).toEqual(["secrets/mlflow_s3_secret_key"]);
    expect(read(dir, "mlflow_s3_secret_key")).not.toBe(old);
    expect(run.stdout).toContain("--force-recreate createbuckets mlflow");
    expect(run.stdout).not.toContain(read(dir, "mlflow_s3_secret_key").trim());
  });

  it("minio replaces only the MinIO password and says the container must be recreated", () => {
    bootstrapped();
    const before = snapshot(dir);
    const run = bootstrap(dir, ["--rotate", "minio"]);
    expect(run.status).toBe(0);
    expect(changedFiles(before, snapshot(dir))).toEqual(["secrets/minio_root_password"]);
    expect(run.stdout).toContain("--force-recreate");
  });

  it("postgres is refused without --force (nothing changes), and with --force prints the ALTER ROLE step", () => {
    bootstrapped();
    const before = snapshot(dir);
    const refused = bootstrap(dir, ["--rotate", "postgres"]);
    expectOneLineError(refused);
    expect(refused.stderr).toContain("--force");
    expect(snapshot(dir)).toEqual(before);

    const forced = bootstrap(dir, ["--rotate", "postgres", "--force"]);
    expect(forced.status).toBe(0);
    expect(changedFiles(before, snapshot(dir))).toEqual(["secrets/postgres_password"]);
    expect(forced.stdout).toContain("docker compose exec -T db psql -v ON_ERROR_STOP=1 -U mlflow -d mlflow <<SQL");
    expect(forced.stdout).toContain("ALTER ROLE CURRENT_USER PASSWORD '$(cat secrets/postgres_password)'");
    expect(forced.stdout).not.toContain(read(dir, "postgres_password"));
  });
});

describe("bootstrap --password-stdin", () => {
  const strong = "Kettle-orbit-9-lantern-Quay";

  it("uses a strong password from stdin for a new user", () => {
    const run = bootstrap(dir, ["--user", "alice", "--password-stdin"], `${strong}\n`);
    expect(run.status, run.stderr).toBe(0);
    expect(read(dir, "proxy_password.alice")).toBe(strong);
    expectLoginWorks(dir, "alice", strong);
    // A chosen password: bcrypt at a cost that suits its strength in both files, no fast {SSHA} line.
    const cost = bcryptCostFor(estimateGuessesLog10(strong, ["alice"]).guessesLog10);
    expect(cost).toBeGreaterThanOrEqual(4);
    for (const [file, sep] of [["proxy_users.caddy", " "], ["proxy_users.htpasswd", ":"]]) {
      expect(userLine(dir, file, "alice")).toMatch(new RegExp(`^alice${sep}\\$2[aby]\\$${String(cost).padStart(2, "0")}\\$`));
    }
    expect(run.stdout + run.stderr).not.toContain(strong);
  });

  it("replaces an existing user's password only together with --rotate", () => {
    bootstrapped();
    const before = snapshot(dir);
    const refused = bootstrap(dir, ["--password-stdin"], strong);
    expectOneLineError(refused);
    expect(refused.stderr).toContain("--rotate proxy:mlflow --password-stdin");
    expect(snapshot(dir)).toEqual(before);

    const run = bootstrap(dir, ["--rotate", "proxy", "--password-stdin"], strong);
    expect(run.status, run.stderr).toBe(0);
    expect(read(dir, "proxy_password.mlflow")).toBe(strong);
    expectLoginWorks(dir, "mlflow", strong);
  });

  it.each(["password", "Password1234567!", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Passw0rd12345678", "December2025!!!!", "Summer2024!Summer", ""])("refuses %j with the rules and writes nothing", (weak) => {
    const run = bootstrap(dir, ["--password-stdin"], weak);
    expectOneLineError(run);
    expect(run.stderr).toMatch(weak === "" ? /stdin was empty/ : /password refused: .*Required: at least 16 characters/);
    if (weak.length >= 16) expect(run.stderr).toMatch(/easy to guess: about 10\^\d+ guesses/);
    expect(readdirSync(dir)).toEqual([".env.example"]);
  });
});

describe("bootstrap: bad input fails in one line and writes nothing", () => {
  it.each([
    ["an unknown flag", ["--bogus"], /Unknown option '--bogus'/, 2],
    ["a bad user name", ["--user", "Bad User"], /invalid user name/, 2],
    ["a too long user name", ["--user", "a".repeat(65)], /invalid user name/, 2],
    ["a bad rotate name", ["--rotate", "everything"], /cannot rotate "everything"/, 2],
    ["a rotate user that contradicts --user", ["--user", "bob", "--rotate", "proxy:alice"], /conflicts/, 2],
    ["a URL instead of a domain", ["--domain", "https://mlflow.example.com"], /invalid domain/, 2],
    ["a flag without its value", ["--user"], /argument missing/, 2],
  ])("%s", (_what, args, message, code) => {
    const run = bootstrap(dir, args as string[]);
    expectOneLineError(run);
    expect(run.status).toBe(code);
    expect(run.stderr).toMatch(message as RegExp);
    expect(readdirSync(dir)).toEqual([".env.example"]);
  });

  it("without .env.example it says to run from the repository root or pass --dir", () => {
    rmSync(join(dir, ".env.example"));
    const run = bootstrap(dir);
    expectOneLineError(run);
    expect(run.stderr).toMatch(/no \.env\.example .* run from the repository root or pass --dir/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a --domain that differs from the existing .env, which stays as it is", () => {
    bootstrapped();
    const before = snapshot(dir);
    const run = bootstrap(dir, ["--domain", "other.example.com"]);
    expectOneLineError(run);
    expect(run.stderr).toMatch(/edit DOMAIN in \.env/);
    expect(snapshot(dir)).toEqual(before);
    expect(bootstrap(dir, ["--domain", "localhost"]).status).toBe(0); // agreeing is fine
  });

  it("--help prints usage and writes nothing", () => {
    const run = bootstrap(dir, ["--help"]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: npm run bootstrap/);
    expect(readdirSync(dir)).toEqual([".env.example"]);
  });
});

describe("bootstrap: interrupted or blocked", () => {
  it("refuses before writing anything when a secret's path is not a regular file", () => {
    mkdirSync(join(dir, "secrets", "proxy_users.caddy"), { recursive: true });
    const before = snapshot(dir);
    const run = bootstrap(dir);
    expectOneLineError(run);
    expect(run.stderr).toContain("secrets/proxy_users.caddy exists but is not a regular file");
    expect(snapshot(dir)).toEqual(before);
  });

  it("killed half-way, leaves only complete files, and the next run finishes the job with the same passwords", async () => {
    const child = spawn(process.execPath, [...NODE_ARGS, "--dir", dir], { ...SPAWN, stdio: "ignore" });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    // Kill it as soon as the first secret exists: the run is then between two files (or, on a fast machine, done).
    while (child.exitCode === null && !existsSync(join(dir, "secrets", "postgres_password"))) await sleep(2);
    child.kill("SIGKILL");
    await exited;

    const complete = (name: string) =>
      name === "proxy_users.caddy_guard" ? /^# Written by npm run bootstrap[^]*\n@proxy_unknown_user expression `.*`\n$/ : name.startsWith("proxy_users.") ? /^mlflow[ :]\S+\n$/ : /^[A-Za-z0-9_-]{40}$/;
    const left = readdirSync(join(dir, "secrets")).filter((name) => !name.includes(".tmp-"));
    for (const name of left) expect(read(dir, name)).toMatch(complete(name));
    const kept = Object.fromEntries(left.filter((name) => !name.startsWith("proxy_users.")).map((name) => [name, read(dir, name)]));

    const run = bootstrap(dir);
    expect(run.status, run.stderr).toBe(0);
    for (const [name, content] of Object.entries(kept)) expect(read(dir, name)).toBe(content);
    expectLoginWorks(dir, "mlflow", read(dir, "proxy_password.mlflow"));
  });
});
