// caddy/docker-entrypoint.sh (the proxy image for Railway and the single container) run natively with our Caddyfile
// and ONLY environment variables, in front of the MLflow double: users from AUTH_USERNAME/AUTH_PASSWORD (hashed at
// start), or the Compose users file when present; $PORT; and the password in no process argument, no log line, no
// file others can read, and not in Caddy's environment.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { startMlflowDouble, type MlflowDouble } from "./support/mlflow-double.ts";
import { cmdline, descendantsOf, environOf, PROXY_ENTRYPOINT, startProxyEntrypoint, type Running } from "./support/paas.ts";
import { basicAuth, caddyUsersFile, httpRequest } from "./support/proxies.ts";
import { caddyGuardFile } from "../scripts/lib/caddy-user-guard.ts";
import { cpuSeconds } from "../scripts/lib/bench-burst.ts";
import { makeTempDir } from "./support/tmp.ts";

const caddy = requireBinary("caddy", "caddy");
const shellcheck = requireBinary("shellcheck", "shellcheck");
// The caddy image's sh, awk and mktemp are busybox's: the guard and the cost are computed with them too.
const busybox = requireBinary("busybox", "busybox-static");

const USER = "mlflow-admin";
// Shell and URL metacharacters: a quoting mistake anywhere would show.
const PASSWORD = "Zq8$Lm'3\"Vx;&|*Kp`9 Rt\\Nw%40";

/** Files under `dir` that others (not the owner) may read, and the directories they are in. */
function filesReadableByOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string, parentsOpen: boolean) => {
    const info = statSync(path);
    if (info.isDirectory()) {
      const open = parentsOpen && (info.mode & 0o005) === 0o005;
      for (const name of readdirSync(path)) walk(join(path, name), open);
    } else if (parentsOpen && info.mode & 0o004) {
      found.push(path);
    }
  };
  walk(dir, true);
  return found;
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

describe.skipIf(!caddy)("caddy/docker-entrypoint.sh: the proxy from environment variables only", () => {
  let double: MlflowDouble;
  let proxy: Running;
  let argvLog: string;
  let logs: { dir: string; cleanup: () => void };
  const seenCommandLines = new Set<string>();

  beforeAll(async () => {
    double = await startMlflowDouble();
    logs = makeTempDir("proxy-entrypoint-argv");
    argvLog = join(logs.dir, "caddy-argv");
    // Sample every process's argv while the entrypoint starts (bcrypt at cost 14 takes about a second, so
    // `caddy hash-password` is seen: the test checks that below, so an idle sampler cannot pass unnoticed).
    const sampler = setInterval(() => {
      for (const entry of readdirSync("/proc")) if (/^\d+$/.test(entry)) seenCommandLines.add(cmdline(Number(entry)));
    }, 5);
    try {
      proxy = await startProxyEntrypoint({
        env: { AUTH_USERNAME: USER, AUTH_PASSWORD: PASSWORD },
        upstream: double.hostPort,
        caddyArgvLog: argvLog,
      });
    } finally {
      clearInterval(sampler);
    }
  });
  afterAll(async () => {
    await proxy?.stop();
    await double?.stop();
    logs?.cleanup();
  });

  it("listens on $PORT and requires the user from AUTH_USERNAME/AUTH_PASSWORD everywhere but /health", async () => {
    const health = await httpRequest(proxy.url, "/health");
    expect(health.status).toBe(200);
    expect(health.body).toBe("OK");

    const anonymous = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search?max_results=1");
    expect(anonymous.status).toBe(401);
    const wrong = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search?max_results=1", { headers: { authorization: basicAuth(USER, `${PASSWORD}x`) } });
    expect(wrong.status).toBe(401);
    const right = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search?max_results=1", { headers: { authorization: basicAuth(USER, PASSWORD) } });
    expect(right.status).toBe(200);
    expect(double.calls.filter((c) => c.path.startsWith("/api/")).every((c) => c.authorization)).toBe(true);
  });

  it("never puts the password in a process argument", () => {
    expect([...seenCommandLines].some((line) => /caddy hash-password/.test(line))).toBe(true); // the sampler saw the hashing
    for (const line of seenCommandLines) expect(line).not.toContain(PASSWORD);
    const argvs = readFileSync(argvLog, "utf8").split("\n").filter(Boolean);
    // What the wrapper recorded: `hash-password --help` (does this caddy know --bcrypt-cost?), the hashing, `run`.
    expect(argvs.map((a) => a.split("\0").slice(0, 2).join(" "))).toEqual(["hash-password --help", expect.stringMatching(/^hash-password/), "run --config"]);
    expect(argvs.join("\n")).not.toContain(PASSWORD);
    expect(cmdline(proxy.proc.child.pid!)).not.toContain(PASSWORD);
  });

  it("keeps the password out of the log and out of Caddy's environment", () => {
    expect(proxy.output()).toContain(`user ${USER} from AUTH_USERNAME/AUTH_PASSWORD`);
    expect(proxy.output()).not.toContain(PASSWORD);
    const environment = environOf(proxy.proc.child.pid!); // the entrypoint exec'd caddy: same process
    expect(environment.AUTH_USERNAME).toBe(USER);
    expect(environment).not.toHaveProperty("AUTH_PASSWORD");
    expect(Object.values(environment).join("\n")).not.toContain(PASSWORD);
  });

  it("writes the hash to a file only its owner can read, and the password to no file at all", () => {
    const usersFile = environOf(proxy.proc.child.pid!).CADDY_USERS_FILE;
    expect(usersFile.startsWith(proxy.dir)).toBe(true);
    expect(statSync(usersFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(usersFile, "..")).mode & 0o777).toBe(0o700);
    expect(readFileSync(usersFile, "utf8")).toMatch(new RegExp(`^${USER} \\$2a\\$\\d\\d\\$[./A-Za-z0-9]{53}\\n$`));
    expect(filesReadableByOthers(proxy.dir)).not.toContain(usersFile);
    for (const file of allFiles(proxy.dir)) expect(readFileSync(file, "utf8"), file).not.toContain(PASSWORD);
  });

  it("builds the user guard from the users file (0600): unknown user names get 401 without Caddy's cost-14 dummy hash", async () => {
    const env = environOf(proxy.proc.child.pid!);
    const guard = env.CADDY_GUARD_FILE;
    expect(guard.startsWith(proxy.dir)).toBe(true);
    expect(statSync(guard).mode & 0o777).toBe(0o600);
    // PASSWORD looks generated: the guard also requires its first 3 characters.
    expect(readFileSync(guard, "utf8")).toBe(caddyGuardFile(readFileSync(env.CADDY_USERS_FILE, "utf8"), new Map([[USER, PASSWORD.slice(0, 3)]])));
    const before = cpuSeconds([proxy.proc.child.pid!]);
    // Unknown users, and wrong passwords of the known user with another start: the guard's 401, no bcrypt.
    for (let i = 0; i < 4; i++) {
      for (const authorization of [basicAuth(`nobody${i}`, PASSWORD), basicAuth(USER, `x${i}${PASSWORD}`)]) {
        const response = await httpRequest(proxy.url, "/", { headers: { authorization } });
        expect(response.status).toBe(401);
        expect(response.headers["www-authenticate"]).toBe('Basic realm="restricted"');
      }
    }
    expect(cpuSeconds([proxy.proc.child.pid!]) - before).toBeLessThan(0.5);
    // A wrong password with the right start reaches basicauth: 401 too.
    const sameStart = await httpRequest(proxy.url, "/", { headers: { authorization: basicAuth(USER, `${PASSWORD.slice(0, 3)}wrong-rest-of-it`) } });
    expect(sameStart.status).toBe(401);
    expect(sameStart.headers["www-authenticate"]).toBe('Basic realm="restricted"');
  });

  it("says which bcrypt cost the password got (Debian's caddy 2.6 cannot set one: 14)", () => {
    const hash = readFileSync(environOf(proxy.proc.child.pid!).CADDY_USERS_FILE, "utf8").split(" ")[1];
    const cost = Number(hash.split("$")[2]);
    expect(proxy.output()).toMatch(new RegExp(`bcrypt cost ${cost}`));
    if (/no --bcrypt-cost/.test(proxy.output())) expect(cost).toBe(14);
    else expect(cost).toBe(4); // PASSWORD looks generated: 29 characters, 28 distinct, 4 classes
  });
});

/** A caddy 2.8+ stand-in for hash-password (Debian's 2.6 has no --bcrypt-cost): it prints a hash of the cost asked for. */
const CADDY_STAND_IN =
  '#!/bin/sh\nif [ "$2" = --help ]; then echo "  --bcrypt-cost int   Bcrypt hashing cost"; exit 0; fi\n[ "$2" = --bcrypt-cost ] || exit 3\ncat >/dev/null\nprintf \'$2a$%02d$%s\\n\' "$3" "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0"\n';

/** AUTH_PASSWORD and the start the guard requires ("" for the user name only). */
const GUARD_CASES: [string, string][] = [
  [PASSWORD, PASSWORD.slice(0, 3)],
  ["k7Hq2mZp9XwL4vRt8NcB3yFd", "k7H"],
  // ">" as the 15th byte of "mlflow-admin:x>..." makes a base64 "+": written [+].
  ["x>Kp9Rt2Nw4Lm8Vq3Zb7Hc6y", "x>K"],
  ["~?>Kp9Rt2Nw4Lm8Vq3Zb7Hc6", "~?>"],
  // Looks generated, but its start is not printable ASCII: the user name only.
  ["üKp9Rt2Nw4Lm8Vq3Zb7Hc6yy", ""],
  // Chosen-looking (cost 12): never a character of it.
  ["Summer2024!Summer2024!Summer", ""],
  ["a".repeat(30), ""],
  ["Tr0ub4dor&3xyz", ""],
];

describe("caddy/docker-entrypoint.sh: guard and cost without a caddy (sh and awk only)", () => {
  const runEntrypoint = (env: Record<string, string>, command: string, bin?: string) => {
    const dir = makeTempDir("proxy-entrypoint-sh");
    try {
      mkdirSync(join(dir.dir, "tmp"));
      return spawnSync("sh", [PROXY_ENTRYPOINT, "sh", "-c", command], {
        env: { PATH: `${bin ? `${bin}:` : ""}${process.env.PATH}`, TMPDIR: join(dir.dir, "tmp"), CADDY_SECRETS_DIR: join(dir.dir, "none"), ...env },
        encoding: "utf8",
      });
    } finally {
      dir.cleanup();
    }
  };

  it("writes the very guard file bootstrap writes, for any users file", () => {
    const dir = makeTempDir("proxy-guard");
    try {
      const users = "mlflow $2a$14$x\n\n# comment\n  alice  $2b$04$y\nab h\na h\nuser@example.com h\nalice h\nZ.-_~ h\nml.flow-2 h\n";
      writeFileSync(join(dir.dir, "users"), users);
      const result = runEntrypoint({ CADDY_USERS_FILE: join(dir.dir, "users") }, 'cat "$CADDY_GUARD_FILE"');
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe(caddyGuardFile(users));
      // An explicit CADDY_GUARD_FILE is used as given.
      writeFileSync(join(dir.dir, "guard"), "@proxy_unknown_user expression true\n");
      const given = runEntrypoint({ CADDY_USERS_FILE: join(dir.dir, "users"), CADDY_GUARD_FILE: join(dir.dir, "guard") }, 'cat "$CADDY_GUARD_FILE"');
      expect(given.stdout).toBe("@proxy_unknown_user expression true\n");
      // A name the guard cannot carry: one line, exit 1.
      writeFileSync(join(dir.dir, "users"), "bad:name h\n");
      const bad = runEntrypoint({ CADDY_USERS_FILE: join(dir.dir, "users") }, "true");
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/error: cannot build the user guard/);
    } finally {
      dir.cleanup();
    }
  });

  it.each(GUARD_CASES)("AUTH_PASSWORD %j: the guard requires %j of it, as bootstrap's code writes it (sh, awk)", (password, prefix) => {
    const dir = makeTempDir("proxy-guard-env");
    try {
      writeFileSync(join(dir.dir, "caddy"), CADDY_STAND_IN);
      chmodSync(join(dir.dir, "caddy"), 0o755);
      const result = runEntrypoint({ AUTH_USERNAME: USER, AUTH_PASSWORD: password }, 'cat "$CADDY_USERS_FILE" "$CADDY_GUARD_FILE"', dir.dir);
      expect(result.status, result.stderr).toBe(0);
      const [line, ...guardLines] = result.stdout.split("\n");
      const guard = guardLines.join("\n");
      expect(guard).toBe(caddyGuardFile(`${line}\n`, new Map(prefix ? [[USER, prefix]] : [])));
      // The right password always passes the guard's regex; for a prefixed user, another start does not.
      const regex = new RegExp(/matches\("(.*)"\)`/.exec(guard)![1]);
      expect(basicAuth(USER, password)).toMatch(regex);
      if (prefix) expect(basicAuth(USER, `Q${password}`)).not.toMatch(regex);
      else expect(basicAuth(USER, `Q${password}`)).toMatch(regex);
    } finally {
      dir.cleanup();
    }
  });

  it.skipIf(!busybox)("builds the same guard and picks the same cost with busybox's sh, awk and mktemp only", () => {
    const dir = makeTempDir("proxy-busybox");
    try {
      const bin = join(dir.dir, "bin");
      mkdirSync(bin);
      for (const applet of ["sh", "awk", "mktemp", "cat", "grep"]) symlinkSync(busybox!, join(bin, applet));
      const users = "mlflow $2a$14$x\n  alice  $2b$04$y\nab h\na h\nuser@example.com h\nml.flow-2 h\n";
      writeFileSync(join(dir.dir, "users"), users);
      mkdirSync(join(dir.dir, "tmp"));
      const env = { PATH: bin, TMPDIR: join(dir.dir, "tmp"), CADDY_SECRETS_DIR: join(dir.dir, "none") };
      const guard = spawnSync(join(bin, "sh"), [PROXY_ENTRYPOINT, "sh", "-c", 'cat "$CADDY_GUARD_FILE"'], { env: { ...env, CADDY_USERS_FILE: join(dir.dir, "users") }, encoding: "utf8" });
      expect(guard.status, guard.stderr).toBe(0);
      expect(guard.stdout).toBe(caddyGuardFile(users));
      // AUTH_USERNAME/AUTH_PASSWORD with a caddy stand-in: the same guard with the password's start as bootstrap's code.
      writeFileSync(join(bin, "caddy"), CADDY_STAND_IN);
      chmodSync(join(bin, "caddy"), 0o755);
      for (const [password, prefix] of GUARD_CASES) {
        const result = spawnSync(join(bin, "sh"), [PROXY_ENTRYPOINT, "sh", "-c", 'cat "$CADDY_USERS_FILE" "$CADDY_GUARD_FILE"'], { env: { ...env, AUTH_USERNAME: USER, AUTH_PASSWORD: password }, encoding: "utf8" });
        expect(result.status, result.stderr).toBe(0);
        const [line, ...guardLines] = result.stdout.split("\n");
        expect(guardLines.join("\n"), password).toBe(caddyGuardFile(`${line}\n`, new Map(prefix ? [[USER, prefix]] : [])));
      }
      // The cost decision alone (no caddy here): the entrypoint's function, sourced without its last line (main).
      const library = join(dir.dir, "entrypoint-functions.sh");
      writeFileSync(library, readFileSync(PROXY_ENTRYPOINT, "utf8").replace(/\nmain "\$@"\n$/, "\n"));
      for (const [password, cost] of [["k7Hq2mZp9XwL4vRt8NcB3yFd", "4"], ["Summer2024!Summer2024!Summer", "12"]]) {
        const result = spawnSync(join(bin, "sh"), ["-c", `. "${library}"; printf '%s' "$PW" | bcrypt_cost_for_password`], { env: { ...env, PW: password }, encoding: "utf8" });
        expect(result.stdout.trim(), password).toBe(cost);
      }
    } finally {
      dir.cleanup();
    }
  });

  // A caddy 2.8+ stand-in for hash-password (Debian's 2.6 has no --bcrypt-cost): it records the cost it was asked for.
  it.each([
    ["Zq8$Lm'3\"Vx;&|*Kp`9 Rt\\Nw%40", 4], // openssl rand -base64 24 / ${{secret(32)}} style
    ["k7Hq2mZp9XwL4vRt8NcB3yFd", 4],
    ["a".repeat(30), 12], // long but one character
    ["abcdefghijklmnopqrstuvwxyz", 12], // 26 distinct, one class
    ["Summer2024!Summer2024!Summer", 12], // 9 distinct
    ["Tr0ub4dor&3xyz", 12], // too short to be generated
  ])("hashes %j at bcrypt cost %i", (password, cost) => {
    const dir = makeTempDir("proxy-cost");
    try {
      const caddyStandIn = join(dir.dir, "caddy");
      writeFileSync(
        caddyStandIn,
        '#!/bin/sh\nif [ "$2" = --help ]; then echo "  --bcrypt-cost int   Bcrypt hashing cost"; exit 0; fi\n[ "$2" = --bcrypt-cost ] || exit 3\ncat >/dev/null\nprintf \'$2a$%02d$%s\\n\' "$3" "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0"\n',
      );
      chmodSync(caddyStandIn, 0o755);
      const result = runEntrypoint({ AUTH_USERNAME: USER, AUTH_PASSWORD: password }, 'cat "$CADDY_USERS_FILE"', dir.dir);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^${USER} \\$2a\\$${String(cost).padStart(2, "0")}\\$`));
      expect(result.stderr).toContain(`bcrypt cost ${cost})`);
      expect(result.stderr).not.toContain(password);
    } finally {
      dir.cleanup();
    }
  });
});

describe.skipIf(!caddy)("caddy/docker-entrypoint.sh: users file, refusals", () => {
  let double: MlflowDouble;
  const started: Running[] = [];
  beforeAll(async () => {
    double = await startMlflowDouble();
  });
  afterAll(async () => {
    for (const proxy of started) await proxy.stop();
    await double?.stop();
  });

  it("uses the Compose users file when present; it wins over AUTH_* (and says so)", async () => {
    const secrets = makeTempDir("proxy-secrets");
    try {
      writeFileSync(join(secrets.dir, "proxy_users_caddy"), caddyUsersFile({ alice: "file-password-1234" }, 4), { mode: 0o600 });
      const proxy = await startProxyEntrypoint({
        env: { CADDY_SECRETS_DIR: secrets.dir, AUTH_USERNAME: USER, AUTH_PASSWORD: PASSWORD },
        upstream: double.hostPort,
      });
      started.push(proxy);
      expect((await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization: basicAuth("alice", "file-password-1234") } })).status).toBe(200);
      expect((await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization: basicAuth(USER, PASSWORD) } })).status).toBe(401);
      expect(proxy.output()).toMatch(/AUTH_USERNAME\/AUTH_PASSWORD are ignored/);
    } finally {
      secrets.cleanup();
    }
  });

  it.each([
    [{}, /no users: set AUTH_USERNAME and AUTH_PASSWORD/],
    [{ AUTH_USERNAME: USER }, /AUTH_USERNAME is set but AUTH_PASSWORD is not/],
    [{ AUTH_PASSWORD: PASSWORD }, /AUTH_PASSWORD is set but AUTH_USERNAME is not/],
    [{ AUTH_USERNAME: USER, AUTH_PASSWORD: "short-pw" }, /AUTH_PASSWORD is shorter than 12 characters/],
    [{ AUTH_USERNAME: "a:b", AUTH_PASSWORD: PASSWORD }, /AUTH_USERNAME may contain only/],
    [{ AUTH_USERNAME: USER, AUTH_PASSWORD: PASSWORD, PORT: "80x" }, /PORT must be a port number/],
  ])("refuses %o with one line that says what to set", async (env, message) => {
    const proxy = await startProxyEntrypoint({ env: env as Record<string, string>, upstream: double.hostPort, wait: false });
    started.push(proxy);
    expect(await proxy.exited).toBe(1);
    const lines = proxy.output().trim().split("\n");
    expect(lines.filter((line) => line.includes("error:"))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(message);
    expect(proxy.output()).not.toContain(PASSWORD);
    expect(descendantsOf(proxy.proc.child.pid!)).toEqual([]);
  });

  it("passes another command on with the prepared environment", async () => {
    const dir = makeTempDir("proxy-entrypoint-cmd");
    try {
      mkdirSync(join(dir.dir, "tmp"));
      const result = spawnSync("sh", [PROXY_ENTRYPOINT, "sh", "-c", 'cat "$CADDY_USERS_FILE"; echo "site=$CADDY_SITE_ADDRESS pw=${AUTH_PASSWORD:-unset}"'], {
        env: { PATH: process.env.PATH, TMPDIR: join(dir.dir, "tmp"), AUTH_USERNAME: USER, AUTH_PASSWORD: PASSWORD, PORT: "8123", CADDY_SECRETS_DIR: join(dir.dir, "none") },
        encoding: "utf8",
      });
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^${USER} \\$2a\\$`));
      expect(result.stdout).toContain("site=:8123 pw=unset");
      expect(existsSync(join(dir.dir, "tmp"))).toBe(true);
    } finally {
      dir.cleanup();
    }
  });
});

describe.skipIf(!shellcheck)("caddy/docker-entrypoint.sh static analysis", () => {
  it("is clean POSIX sh for shellcheck (the caddy image's sh is busybox)", () => {
    const result = spawnSync(shellcheck!, ["--shell=sh", "--severity=style", PROXY_ENTRYPOINT], { encoding: "utf8" });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
