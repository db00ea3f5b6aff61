// The few Docker commands migrate needs (local-stack mode, --upgrade-source, stopping MLflow), run in the project
// directory so `docker compose` reads the same compose files and .env (incl. COMPOSE_FILE) as the user's own commands.
// Arguments go to the executable as an array (no shell); no secret is ever one of them.
import { spawn } from "node:child_process";
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

export function docker(cwd: string, executable = "docker"): Docker {
  const run = (args: string[]) =>
    new Promise<DockerResult>((resolve, reject) => {
      const child = spawn(executable, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      child.on("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "ENOENT" ? new UserError(`docker not found on PATH — install Docker (with Compose v2), or pass --to to migrate into another PostgreSQL`) : error),
      );
      child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
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
  return items.map((i) => ({ service: String(i.Service ?? ""), state: String(i.State ?? "").toLowerCase(), name: String(i.Name ?? "") }));
}

export const isRunning = (services: ServiceState[], service: string) => services.some((s) => s.service === service && s.state === "running");
