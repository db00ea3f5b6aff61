// The few Docker commands migrate needs (local-stack mode, --upgrade-source, stopping MLflow), run in the project
// directory so `docker compose` reads the same compose files and .env (incl. COMPOSE_FILE) as the user's own commands.
// Arguments go to the executable as an array (no shell); no secret is ever one of them.
import type { Shell } from "zx";
import { UserError } from "../cli.ts";

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Docker {
  /** `docker ARGS...`; never throws for a non-zero exit (see `check`). */
  run(args: string[]): Promise<DockerResult>;
  /** `docker compose ARGS...` */
  compose(args: string[]): Promise<DockerResult>;
}

/** `env`: variables added to the environment of every call (e.g. MLFLOW_VERSION, which wins over .env in Compose). */
export function docker(cwd: string, executable = "docker", env: Record<string, string> = {}): Docker {
  // zx quotes each interpolated argument; a non-zero exit is an expected branch here (nothrow), judged by `check`.
  // zx loads on the first call: a migration with --to never runs docker.
  let sh: Shell | undefined;
  const run = async (args: string[]): Promise<DockerResult> => {
    const shell: Shell = sh ?? (sh = (await import("zx")).$({ cwd, quiet: true, nothrow: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } }) as Shell);
    const result = await shell`command -v ${executable} >/dev/null || exit 127; ${executable} ${args}`;
    const code = result.exitCode ?? 1;
    if (code === 127 && !result.stderr.trim()) {
      throw new UserError(`docker not found on PATH — install Docker (with Compose v2), or pass --to to migrate into another PostgreSQL`);
    }
    return { code, stdout: result.stdout, stderr: result.stderr };
  };
  return { run, compose: (args) => run(["compose", ...args]) };
}

/** The result of a command that must succeed: otherwise a one-line UserError naming it and its last error line. */
export function check(r: DockerResult, what: string, fix = ""): DockerResult {
  if (r.code === 0) return r;
  const last = r.stderr.trim().split("\n").filter(Boolean).at(-1) ?? `exit ${r.code}`;
  throw new UserError(`${what} failed: ${last}${fix ? ` — ${fix}` : ""}`);
}

export interface ServiceState {
  service: string;
  state: string;
  name: string;
  /** healthy, starting, unhealthy, or "" for a service without a health check. */
  health: string;
}

/** `docker compose ps --format json`: older Compose prints one JSON array, newer one object per line. */
export async function composeServices(d: Docker): Promise<ServiceState[]> {
  const r = check(await d.compose(["ps", "--all", "--format", "json"]), "docker compose ps", "is Docker running, and is this the stack's directory?");
  const text = r.stdout.trim();
  if (!text) return [];
  let items: Record<string, unknown>[];
  try {
    items = text.startsWith("[") ? JSON.parse(text) : text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch {
    throw new UserError(`cannot read the output of docker compose ps --format json (Compose v2 needed): ${text.slice(0, 80)}`);
  }
  return items.map((i) => ({ service: String(i.Service ?? ""), state: String(i.State ?? "").toLowerCase(), name: String(i.Name ?? ""), health: String(i.Health ?? "").toLowerCase() }));
}

export const isRunning = (services: ServiceState[], service: string) => services.some((s) => s.service === service && s.state === "running");
