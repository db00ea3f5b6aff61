// Local-stack mode (migrate without --to): reach the stack's PostgreSQL and MinIO, which compose.yml does not publish.
//
// The route: a short-lived forwarder container of the stack's own mlflow image, started with
//   docker compose run -d --rm --no-deps --name mlflow-migrate-forward-… -p 127.0.0.1::5432 -p 127.0.0.1::9000 mlflow python3 -c FORWARDER
// It joins the stack's networks (so `db` and `minio` resolve), Docker publishes its two ports on random loopback ports
// (read back with `docker port`), and it is stopped (and removed: --rm) when the migration ends. Why this route:
// db and minio keep running untouched (publishing their ports with an override file would recreate both containers
// and could drop the user's own overlays such as compose.prod.yml), it needs no image but the stack's own, and unlike
// container IPs (docker inspect) it also works with Docker Desktop on macOS and Windows. If the tool is killed, the
// forwarder exits by itself after 15 idle minutes.
//
// Credentials come from where bootstrap put them: .env (POSTGRES_USER, POSTGRES_DB, MINIO_ROOT_USER, MLFLOW_BUCKET)
// and secrets/postgres_password, secrets/minio_root_password — files, never command-line arguments.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../cli.ts";
import { parseEnv } from "../envfile.ts";
import { passwordFromFile } from "../secrets.ts";
import { check, composeServices, isRunning, type Docker } from "./docker.ts";

/**
 * TCP forwarder run inside the container: python3 -c FORWARDER IDLE_SECONDS LISTEN=HOST:PORT...; it prints a line
 * "... ready" once listening and exits when no connection was open for IDLE_SECONDS.
 */
export const FORWARDER = `
import asyncio, sys, time
IDLE = float(sys.argv[1])
ROUTES = [(int(a.split("=")[0]), a.split("=")[1].rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[2:]]
active = 0
last = time.monotonic()
async def pipe(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass
def handler(host, port):
    async def handle(cr, cw):
        global active, last
        active += 1
        try:
            ur, uw = await asyncio.open_connection(host, port)
        except Exception as e:
            print("forward to %s:%d failed: %s" % (host, port, e), flush=True)
            cw.close()
            active -= 1
            last = time.monotonic()
            return
        await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
        active -= 1
        last = time.monotonic()
    return handle
async def main():
    for listen, host, port in ROUTES:
        await asyncio.start_server(handler(host, port), "0.0.0.0", listen)
    print("mlflow-migrate forwarder ready", flush=True)
    while active or time.monotonic() - last < IDLE:
        await asyncio.sleep(5)
asyncio.run(main())
`;

/** The forwarder's container name starts with this; `docker compose ps` lists it as one more `mlflow` container. */
export const FORWARDER_PREFIX = "mlflow-migrate-forward-";

export interface LocalStack {
  /** postgresql://USER@127.0.0.1:PORT/DB (the password is separate) */
  to: string;
  password: string;
  s3: { endpoint: string; bucket: string; accessKeyId: string; secretAccessKey: string };
  /** Stops the forwarder. */
  close(): Promise<void>;
}

function readSecret(dir: string, name: string): string {
  const path = join(dir, "secrets", name);
  let value: string;
  try {
    value = passwordFromFile(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UserError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? error}) — run npm run bootstrap in the stack's directory, or pass --to`);
  }
  if (!value) throw new UserError(`${path} is empty — run npm run bootstrap, or pass --to`);
  return value;
}

/** The stack's settings from .env and secrets/ in `dir`. */
export function stackSettings(dir: string) {
  let env: Record<string, string>;
  try {
    env = parseEnv(readFileSync(join(dir, ".env"), "utf8"));
  } catch {
    throw new UserError(`no .env in ${dir} — run npm run bootstrap (and start the stack), or pass --to postgresql://… to migrate into another PostgreSQL`);
  }
  const need = ["POSTGRES_USER", "POSTGRES_DB", "MINIO_ROOT_USER", "MLFLOW_BUCKET"];
  const missing = need.filter((k) => !env[k]);
  if (missing.length) throw new UserError(`.env lacks ${missing.join(", ")} — run npm run bootstrap (it adds missing settings), or pass --to`);
  return {
    user: env.POSTGRES_USER,
    db: env.POSTGRES_DB,
    minioUser: env.MINIO_ROOT_USER,
    bucket: env.MLFLOW_BUCKET,
    password: readSecret(dir, "postgres_password"),
    minioPassword: readSecret(dir, "minio_root_password"),
  };
}

function hostPort(text: string, what: string): number {
  // `docker port` prints e.g. "127.0.0.1:49153" (and maybe an IPv6 line); take the first.
  const m = /:(\d+)\s*$/m.exec(text.trim().split("\n")[0] ?? "");
  if (!m) throw new UserError(`cannot read the published port for ${what} from docker port: ${JSON.stringify(text.trim().slice(0, 60))}`);
  return Number(m[1]);
}

export async function openLocalStack(dir: string, d: Docker, onPhase: (m: string) => void = () => {}, opts: { readyTimeoutMs?: number } = {}): Promise<LocalStack> {
  const settings = stackSettings(dir);
  const services = await composeServices(d);
  const down = ["db", "minio"].filter((s) => !isRunning(services, s));
  if (down.length) {
    throw new UserError(`the stack's ${down.join(" and ")} ${down.length > 1 ? "are" : "is"} not running — start the stack (docker compose up -d --wait) so MLflow creates its schema, then re-run`);
  }
  const name = `${FORWARDER_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  onPhase(`reaching the stack's PostgreSQL and MinIO through a temporary forwarder container (${name}, loopback only)`);
  check(
    await d.compose(["run", "-d", "--rm", "--no-deps", "--name", name, "-p", "127.0.0.1::5432", "-p", "127.0.0.1::9000", "mlflow", "python3", "-c", FORWARDER, "900", "5432=db:5432", "9000=minio:9000"]),
    "starting the forwarder container (docker compose run mlflow)",
    "is the mlflow image built (docker compose build mlflow)?",
  );
  const close = async () => {
    await d.run(["stop", "--time", "1", name]).catch(() => {});
  };
  try {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
    for (;;) {
      const logs = await d.run(["logs", name]);
      if (/forwarder ready/.test(logs.stdout + logs.stderr)) break;
      if (Date.now() > deadline) throw new UserError(`the forwarder container ${name} did not start (docker logs ${name}: ${(logs.stdout + logs.stderr).trim().split("\n").at(-1) ?? "nothing"})`);
      await sleep(200);
    }
    const pgPort = hostPort(check(await d.run(["port", name, "5432/tcp"]), "docker port").stdout, "PostgreSQL");
    const s3Port = hostPort(check(await d.run(["port", name, "9000/tcp"]), "docker port").stdout, "MinIO");
    return {
      to: `postgresql://${encodeURIComponent(settings.user)}@127.0.0.1:${pgPort}/${encodeURIComponent(settings.db)}`,
      password: settings.password,
      s3: { endpoint: `http://127.0.0.1:${s3Port}`, bucket: settings.bucket, accessKeyId: settings.minioUser, secretAccessKey: settings.minioPassword },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * Waits until the stack's MLflow passes its health check (compose.yml's: it answers a search, so it has its database),
 * so that what runs next (a smoke test, a client) does not meet 502s from the proxy while MLflow is still starting.
 */
export async function waitForMlflow(d: Docker, { timeoutMs = 300_000, pollMs = 1000 }: { timeoutMs?: number; pollMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mlflow = (await composeServices(d)).find((s) => s.service === "mlflow" && !s.name.startsWith(FORWARDER_PREFIX));
    if (!mlflow || mlflow.state !== "running") throw new UserError(`MLflow is ${mlflow?.state ?? "gone"} after the migration — the data is committed; see docker compose logs mlflow, then docker compose up -d --wait`);
    // No health check (an override removed it): running is all there is to wait for.
    if (mlflow.health === "healthy" || mlflow.health === "") return;
    if (mlflow.health === "unhealthy") throw new UserError("MLflow is unhealthy after the migration — the data is committed; see docker compose logs mlflow");
    if (Date.now() > deadline) throw new UserError(`MLflow is not healthy ${Math.round(timeoutMs / 1000)} s after the migration — the data is committed; see docker compose logs mlflow`);
    await sleep(pollMs);
  }
}

/**
 * Stops the stack's MLflow server (the only writer) if it runs; returns what restarts it and waits until it is
 * healthy. `confirm` is asked first (unless it is undefined = --yes). Nothing is stopped when it says no.
 */
export async function stopMlflow(
  d: Docker,
  confirm: (() => Promise<boolean>) | undefined,
  onPhase: (m: string) => void = () => {},
  wait: { timeoutMs?: number; pollMs?: number } = {},
): Promise<(() => Promise<void>) | undefined> {
  const services = await composeServices(d);
  if (!isRunning(services, "mlflow")) return undefined;
  if (confirm && !(await confirm())) throw new UserError("cancelled: MLflow keeps running; nothing was written");
  onPhase("stopping the MLflow server for the migration (docker compose stop mlflow); it is started again afterwards");
  check(await d.compose(["stop", "mlflow"]), "docker compose stop mlflow");
  return async () => {
    onPhase("starting the MLflow server again (docker compose start mlflow)");
    check(await d.compose(["start", "mlflow"]), "docker compose start mlflow", "start it yourself: docker compose up -d --wait");
    onPhase("waiting for the MLflow server to be healthy");
    await waitForMlflow(d, wait);
  };
}
