// Runs the platform entrypoints as the images would, natively: caddy/docker-entrypoint.sh (the proxy image of Railway)
// and paas/supervisor.py (the single-container image) with mlflow/docker-entrypoint.sh and caddy/docker-entrypoint.sh
// under it, configured by environment variables only. `mlflow` is the MLflow API double (mlflow-double-cli.ts).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { findBinary } from "./binaries.ts";
import { freePort } from "./ports.ts";
import { startProcess, waitUntilListening, type RunningProcess } from "./processes.ts";
import { CADDYFILE, REPO_ROOT } from "./proxies.ts";
import { makeTempDir } from "./tmp.ts";

export const PROXY_ENTRYPOINT = join(REPO_ROOT, "caddy", "docker-entrypoint.sh");
export const MLFLOW_ENTRYPOINT = join(REPO_ROOT, "mlflow", "docker-entrypoint.sh");
export const SUPERVISOR = join(REPO_ROOT, "paas", "supervisor.py");

/** The python3 interpreter itself (not a version manager's shim, which costs seconds per call), or undefined. */
let python: string | undefined | null = null;
export function pythonExecutable(): string | undefined {
  if (python !== null) return python;
  const found = findBinary("python3");
  python = found ? spawnSync(found, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).stdout.trim() || undefined : undefined;
  return python;
}

/** A directory with an executable `mlflow` that runs the MLflow double (and, with `caddyArgvLog`, a `caddy` that logs its argv). */
function fakeBin(dir: string, caddyArgvLog?: string): string {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  const loader = pathToFileURL(join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;
  const cli = join(REPO_ROOT, "test", "support", "mlflow-double-cli.ts");
  writeFileSync(join(bin, "mlflow"), `#!/bin/sh\nAWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true exec '${process.execPath}' --import '${loader}' '${cli}' "$@"\n`, { mode: 0o755 });
  if (caddyArgvLog) {
    const caddy = findBinary("caddy");
    if (!caddy) throw new Error("caddy not found: apt-get install caddy");
    // Every argv caddy is started with, NUL-separated, one run per line: what any process list would have shown.
    writeFileSync(join(bin, "caddy"), `#!/bin/sh\nprintf '%s\\0' "$@" >> '${caddyArgvLog}'\necho >> '${caddyArgvLog}'\nexec '${caddy}' "$@"\n`, { mode: 0o755 });
  }
  return bin;
}

/** The environment both runners start from: nothing of the developer's shell, every path inside `dir`. */
async function baseEnv(dir: string, bin: string, python: string): Promise<Record<string, string>> {
  mkdirSync(join(dir, "tmp"), { recursive: true });
  return {
    PATH: `${bin}:${dirname(python)}:/usr/bin:/bin`,
    HOME: dir,
    TMPDIR: join(dir, "tmp"),
    XDG_DATA_HOME: join(dir, "caddy-data"),
    XDG_CONFIG_HOME: join(dir, "caddy-config"),
    CADDYFILE,
    CADDY_ADMIN_ADDRESS: `127.0.0.1:${await freePort()}`,
    // No Compose secrets: these directories do not exist.
    CADDY_SECRETS_DIR: join(dir, "no-secrets"),
    MLFLOW_SECRETS_DIR: join(dir, "no-secrets"),
  };
}

export interface Running {
  url: string;
  port: number;
  dir: string;
  proc: RunningProcess;
  output: () => string;
  /** Every descendant process id (not the runner itself). */
  descendants: () => number[];
  /** Resolves with the exit code (128 + n for signal n) once the runner has exited. */
  exited: Promise<number>;
  stop: () => Promise<void>;
}

function exitCode(proc: RunningProcess): Promise<number> {
  return new Promise((resolve) => {
    const child = proc.child;
    const done = () => resolve(child.exitCode ?? 128 + (child.signalCode ? signalNumber(child.signalCode) : 0));
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once("exit", done);
  });
}

function signalNumber(name: NodeJS.Signals): number {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[name as string] ?? 0;
}

/** Process ids below `root` in the process tree, from /proc. */
export function descendantsOf(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone
    }
  }
  const found: number[] = [];
  const walk = (pid: number) => {
    for (const [child, parent] of parents) {
      if (parent === pid) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(root);
  return found;
}

/** argv of a process (NUL-separated in /proc), "" when it is gone. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** Environment of a process as a map, {} when it is gone. */
export function environOf(pid: number): Record<string, string> {
  try {
    const raw = readFileSync(`/proc/${pid}/environ`, "utf8");
    return Object.fromEntries(raw.split("\0").filter(Boolean).map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  } catch {
    return {};
  }
}

/** GET `url` until it answers `status` (any status when undefined); rejects if `proc` exits or after `timeoutMs`. */
export async function waitForHttp(url: string, { proc, status, timeoutMs = 30_000 }: { proc?: RunningProcess; status?: number; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`exited with ${proc.child.exitCode ?? proc.child.signalCode} before ${url} answered:\n${proc.output()}`);
    }
    const answered = await new Promise<number>((resolve) => {
      const req = request(url, { agent: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", () => resolve(0));
      req.on("timeout", () => req.destroy());
      req.end();
    });
    if (answered !== 0 && (status === undefined || answered === status)) return;
    await sleep(100);
  }
  throw new Error(`${url} did not answer${status ? ` ${status}` : ""} within ${timeoutMs} ms${proc ? `:\n${proc.output()}` : ""}`);
}

function running(proc: RunningProcess, port: number, dir: string, stop: () => Promise<void>): Running {
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    proc,
    output: proc.output,
    descendants: () => descendantsOf(proc.child.pid!),
    exited: exitCode(proc),
    stop,
  };
}

/**
 * caddy/docker-entrypoint.sh (with dash, the image's busybox sh stand-in) running our Caddyfile in front of
 * `upstream`, configured by `env` only (PORT, AUTH_USERNAME, AUTH_PASSWORD...). `wait: false` returns at once
 * (for refusals); `caddyArgvLog` records every caddy argv.
 */
export async function startProxyEntrypoint({ env, upstream, wait = true, caddyArgvLog }: { env: Record<string, string>; upstream: string; wait?: boolean; caddyArgvLog?: string }): Promise<Running> {
  const python = pythonExecutable() ?? "/usr/bin/python3";
  const { dir, cleanup } = makeTempDir("proxy-entrypoint");
  chmodSync(dir, 0o755);
  const bin = fakeBin(dir, caddyArgvLog);
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const shell = findBinary("dash") ?? "sh";
  const proc = startProcess(shell, [PROXY_ENTRYPOINT], { env: { ...(await baseEnv(dir, bin, python)), MLFLOW_UPSTREAM: upstream, PORT: String(port), ...env }, cwd: dir });
  if (!wait) return running(proc, port, dir, async () => (await proc.stop(), cleanup()));
  const stop = await waitUntilListening(proc, port, cleanup, 30_000);
  return running(proc, port, dir, stop);
}

/**
 * paas/supervisor.py with both entrypoints under it, configured by `env` only. Waits (unless `wait: false`) until
 * /health answers 200 through the proxy, i.e. MLflow is up behind it.
 */
export async function startSingleContainer({ env, wait = true }: { env: Record<string, string>; wait?: boolean }): Promise<Running> {
  const python = pythonExecutable();
  if (!python) throw new Error("python3 not found: apt-get install python3");
  const { dir, cleanup } = makeTempDir("paas");
  chmodSync(dir, 0o755);
  const bin = fakeBin(dir);
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const processEnv = {
    ...(await baseEnv(dir, bin, python)),
    PORT: String(port),
    MLFLOW_PORT: String(await freePort()),
    SUPERVISOR_MLFLOW_ENTRYPOINT: MLFLOW_ENTRYPOINT,
    SUPERVISOR_PROXY_ENTRYPOINT: PROXY_ENTRYPOINT,
    SUPERVISOR_STOP_TIMEOUT: "5",
    ...env,
  };
  const proc = startProcess(python, [SUPERVISOR], { env: processEnv, cwd: dir });
  const stop = async () => {
    await proc.stop();
    cleanup();
  };
  const result = running(proc, port, dir, stop);
  if (!wait) return result;
  try {
    await waitForHttp(`${result.url}/health`, { proc, status: 200 });
  } catch (error) {
    await stop();
    throw error;
  }
  return result;
}
