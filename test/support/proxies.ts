// Runs our very proxy configs (caddy/Caddyfile, nginx/templates + nginx/docker-entrypoint.d) as plain processes on
// random ports, the way their containers would: the tests, the benchmark and the smoke-test helper share this.
import { execFile } from "node:child_process";
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { chmodSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { caddyGuardFile } from "../../scripts/lib/caddy-user-guard.ts";
import { caddyHash, sshaHash } from "../../scripts/lib/password-hashes.ts";
import { findBinary } from "./binaries.ts";
import { freePort } from "./ports.ts";
import { startProcess, waitUntilListening, type RunningProcess } from "./processes.ts";
import { makeTempDir } from "./tmp.ts";

const run = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CADDYFILE = join(REPO_ROOT, "caddy", "Caddyfile");
export const NGINX_TEMPLATE_DIR = join(REPO_ROOT, "nginx", "templates");
export const NGINX_ENTRYPOINT_DIR = join(REPO_ROOT, "nginx", "docker-entrypoint.d");

export interface ProxyOptions {
  /** MLFLOW_UPSTREAM: host:port of the service behind the proxy (an http:// URL is accepted too). */
  upstream: string;
  /** Content of the users file (see caddyUsersFile / htpasswdFile). */
  usersFile: string;
  /** PROXY_MAX_BODY_SIZE as in .env (default "0": no limit). */
  maxBodySize?: string;
  /** Port to listen on (default: a free one). */
  port?: number;
}

export interface RunningProxy {
  kind: "caddy" | "nginx";
  url: string;
  port: number;
  /** Scratch directory of this instance (configs, state, temp files). */
  dir: string;
  /** Where a proxy would spool request bodies to disk (nginx's client_body_temp); undefined for Caddy, which has none. */
  bodyTempDir?: string;
  /** Every directory where the proxy may spool request or response bodies (nginx: client_body_temp, proxy_temp). */
  spoolDirs: string[];
  /** Process ids of the proxy (nginx: master and workers). */
  pids: () => number[];
  output: () => string;
  stop: () => Promise<void>;
}

/** Users file content for Caddy's basic_auth import: `<user> <bcrypt hash>` per line (default cost: a generated password's). */
export function caddyUsersFile(users: Record<string, string>, cost?: number): string {
  return Object.entries(users).map(([user, password]) => `${user} ${caddyHash(password, cost)}\n`).join("");
}

/** Users file content for nginx's auth_basic_user_file: `<user>:{SSHA}...` per line (what generated passwords get). */
export function htpasswdFile(users: Record<string, string>): string {
  return Object.entries(users).map(([user, password]) => `${user}:${sshaHash(password)}\n`).join("");
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** "http://host:port/" or "host:port" → "host:port", the form both configs take. */
function hostPort(upstream: string): string {
  if (!/^https?:\/\//.test(upstream)) return upstream;
  const url = new URL(upstream);
  if (url.protocol !== "http:" || (url.pathname !== "/" && url.pathname !== "")) throw new Error(`upstream must be http://host:port, got ${upstream}`);
  return url.host;
}

function need(name: string, debianPackage: string): string {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} not found: apt-get install ${debianPackage}`);
  return path;
}

function ownedTempDir(prefix: string) {
  const temp = makeTempDir(prefix);
  chmodSync(temp.dir, 0o755); // nginx workers (user nobody when we are root) must reach their files
  return temp;
}

/** `adminAddress`: CADDY_ADMIN_ADDRESS (default 127.0.0.1 on a free port, so parallel instances never collide; "off" works). */
/** `guardFile`: the content of CADDY_GUARD_FILE (default: the guard bootstrap builds from `usersFile`). */
export async function startCaddy(options: ProxyOptions & { adminAddress?: string; guardFile?: string }): Promise<RunningProxy> {
  const caddy = need("caddy", "caddy");
  const port = options.port ?? (await freePort());
  const adminAddress = options.adminAddress ?? `127.0.0.1:${await freePort()}`;
  const { dir, cleanup } = ownedTempDir("caddy");
  const usersFile = join(dir, "proxy_users_caddy");
  writeFileSync(usersFile, options.usersFile, { mode: 0o600 });
  // The user guard bootstrap writes next to the users file (secrets/proxy_users.caddy_guard), from the same users.
  const guardFile = join(dir, "proxy_users_caddy_guard");
  writeFileSync(guardFile, options.guardFile ?? caddyGuardFile(options.usersFile), { mode: 0o600 });
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    XDG_DATA_HOME: join(dir, "data"),
    XDG_CONFIG_HOME: join(dir, "config"),
    CADDY_SITE_ADDRESS: `:${port}`,
    CADDY_ADMIN_ADDRESS: adminAddress,
    MLFLOW_UPSTREAM: hostPort(options.upstream),
    CADDY_USERS_FILE: usersFile,
    CADDY_GUARD_FILE: guardFile,
    PROXY_MAX_BODY_SIZE: options.maxBodySize ?? "0",
  };
  const proc = startProcess(caddy, ["run", "--config", CADDYFILE, "--adapter", "caddyfile"], { env, cwd: dir });
  return finishStart("caddy", proc, port, dir, cleanup);
}

export interface NginxOptions extends ProxyOptions {
  /**
   * Run nginx/docker-entrypoint.d/*.sh before nginx, as the image does (default true). With false the users file is
   * used in place at mode 0600, owned by us: what happens in a container without our entrypoint script.
   */
  entrypointScripts?: boolean;
}

/** The group the worker processes run as: `nogroup` for user nobody when we are root, else our own group. */
function workerIdentity(): { user?: string; group: string } {
  if (process.getuid?.() === 0) return { user: "nobody", group: "nogroup" };
  return { group: String(userInfo().gid) };
}

/**
 * Does what the official image's entrypoint does with our files: runs nginx/docker-entrypoint.d in name order
 * (executable *.envsh sourced, *.sh executed), then renders every template exactly like its
 * 20-envsubst-on-templates.sh: envsubst with the explicit list of DEFINED variables only, so $host etc survive.
 */
export async function renderNginxConfig({ env, outputDir, entrypointScripts = true }: { env: Record<string, string>; outputDir: string; entrypointScripts?: boolean }): Promise<void> {
  need("envsubst", "gettext-base");
  mkdirSync(outputDir, { recursive: true });
  const script = `
set -e
for f in $(find "$ENTRYPOINT_DIR" -follow -type f -print | sort -V); do
  case "$f" in
    *.envsh) if [ -x "$f" ]; then . "$f"; fi ;;
    *.sh) if [ -x "$f" ] && [ "$RUN_SH" = 1 ]; then "$f"; fi ;;
  esac
done
filter="\${NGINX_ENVSUBST_FILTER:-}"
defined_envs=$(printf '\${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /\${filter}/ ) ? name : \\"\\" } }" < /dev/null ))
find "$TEMPLATE_DIR" -follow -type f -name "*.template" -print | while read -r template; do
  relative_path="\${template#$TEMPLATE_DIR/}"
  output_path="$OUTPUT_DIR/\${relative_path%.template}"
  mkdir -p "$(dirname "$output_path")"
  envsubst "$defined_envs" < "$template" > "$output_path"
done
`;
  await run("sh", ["-c", script], {
    env: { ...env, ENTRYPOINT_DIR: NGINX_ENTRYPOINT_DIR, TEMPLATE_DIR: NGINX_TEMPLATE_DIR, OUTPUT_DIR: outputDir, RUN_SH: entrypointScripts ? "1" : "0" },
  });
}

/** The parts of the image's /etc/nginx/nginx.conf that matter, with every path inside `dir`. */
function nginxMainConf(dir: string, user?: string, group?: string): string {
  return `${user ? `user ${user} ${group};` : ""}
worker_processes auto;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log ${dir}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path ${dir}/client_body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;
    include ${dir}/conf.d/*.conf;
}
`;
}

export async function startNginx(options: NginxOptions): Promise<RunningProxy> {
  const nginx = need("nginx", "nginx-light");
  const port = options.port ?? (await freePort());
  const { dir, cleanup } = ownedTempDir("nginx");
  const { user, group } = workerIdentity();
  const entrypointScripts = options.entrypointScripts ?? true;
  const secret = join(dir, "secrets", "proxy_users_htpasswd");
  mkdirSync(dirname(secret), { mode: 0o755 }); // like /run/secrets: the directory is open, the file is 0600
  writeFileSync(secret, options.usersFile, { mode: 0o600 });
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NGINX_LISTEN: `127.0.0.1:${port}`,
    MLFLOW_UPSTREAM: hostPort(options.upstream),
    NGINX_HTPASSWD: entrypointScripts ? join(dir, "proxy_users.htpasswd") : secret,
    PROXY_MAX_BODY_SIZE: options.maxBodySize ?? "0",
    PROXY_USERS_SECRET: secret,
    NGINX_HTPASSWD_GROUP: group,
  };
  try {
    await renderNginxConfig({ env, outputDir: join(dir, "conf.d"), entrypointScripts });
  } catch (error) {
    cleanup();
    throw error;
  }
  writeFileSync(join(dir, "nginx.conf"), nginxMainConf(dir, user, group));
  const proc = startProcess(nginx, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;"], { env: { PATH: env.PATH } });
  const running = await finishStart("nginx", proc, port, dir, cleanup);
  return { ...running, bodyTempDir: join(dir, "client_body_temp"), spoolDirs: [join(dir, "client_body_temp"), join(dir, "proxy_temp")] };
}

async function finishStart(kind: "caddy" | "nginx", proc: RunningProcess, port: number, dir: string, cleanup: () => void): Promise<RunningProxy> {
  const stop = await waitUntilListening(proc, port, cleanup);
  const master = proc.child.pid!;
  return {
    kind,
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    spoolDirs: [],
    pids: () => [master, ...childPids(master)],
    output: proc.output,
    stop,
  };
}

function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Resident memory of the given processes together, in bytes (0 for ones that are gone). */
export function rssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (match) total += Number(match[1]) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

/** Total size of the files directly or indirectly under `dir` (0 if it does not exist). */
export function dirBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const path = join(dir, name);
    try {
      const info = statSync(path);
      total += info.isDirectory() ? dirBytes(path) : info.size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Header name/value pairs as received, duplicates kept (lower-cased names). */
  rawHeaders: [string, string][];
  body: string;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  /** A request body: bytes, or a stream (sent chunked unless headers give a content-length). */
  body?: Buffer | string | Readable;
}

/**
 * One request on its own connection, with the request target sent exactly as given (no normalisation, unlike
 * fetch) and any Host header: what the bypass and Host pass-through tests need.
 */
export function httpRequest(baseUrl: string, path: string, { method = "GET", headers = {}, body }: HttpRequestOptions = {}): Promise<HttpResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: hostname, port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const raw = res.rawHeaders;
        const rawHeaders: [string, string][] = [];
        for (let i = 0; i < raw.length; i += 2) rawHeaders.push([raw[i].toLowerCase(), raw[i + 1]]);
        resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders, body: Buffer.concat(chunks).toString() });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body instanceof Readable) {
      pipeline(body, req).catch(reject);
    } else {
      req.end(body);
    }
  });
}

/** `bytes` zero bytes as a stream, produced chunk by chunk (never held in memory as a whole). */
export function zeroStream(bytes: number, chunkSize = 1024 * 1024): Readable {
  const chunk = Buffer.alloc(chunkSize);
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      this.push(piece);
    },
  });
}

export interface TransferStats {
  status: number;
  /** Body bytes received by the client (downloads) or the response text (uploads). */
  body: string;
  bytesReceived: number;
  seconds: number;
  /** Highest resident memory of the proxy processes seen while the transfer ran, in bytes. */
  peakRssBytes: number;
  /** Most bytes seen at once in the proxy's spool directories while the transfer ran. */
  peakSpoolBytes: number;
}

/**
 * Uploads `bytes` streamed zero bytes (POST, with content-length) to `baseUrl + path`, or with `download` GETs the
 * path and counts what arrives, sampling the proxy's memory and spool directory every 20 ms meanwhile.
 */
export async function measureTransfer(
  baseUrl: string,
  path: string,
  { bytes = 0, headers = {}, proxy, download = false }: { bytes?: number; headers?: OutgoingHttpHeaders; proxy?: RunningProxy; download?: boolean },
): Promise<TransferStats> {
  let peakRssBytes = 0;
  let peakSpoolBytes = 0;
  const pids = proxy?.pids() ?? [];
  const sample = () => {
    if (!proxy) return;
    peakRssBytes = Math.max(peakRssBytes, rssBytes(pids));
    peakSpoolBytes = Math.max(peakSpoolBytes, spooledBytes(proxy, pids));
  };
  sample();
  const timer = setInterval(sample, 20);
  const started = performance.now();
  const { hostname, port } = new URL(baseUrl);
  try {
    const result = await new Promise<{ status: number; body: string; bytesReceived: number }>((resolvePromise, reject) => {
      const req = request(
        {
          host: hostname,
          port,
          path,
          method: download ? "GET" : "POST",
          headers: download ? headers : { ...headers, "content-type": "application/octet-stream", "content-length": String(bytes) },
          agent: false,
        },
        (res) => {
          let bytesReceived = 0;
          const text: Buffer[] = [];
          res.on("data", (chunk: Buffer) => {
            bytesReceived += chunk.length;
            if (!download) text.push(chunk);
          });
          res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(text).toString(), bytesReceived }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      if (download) req.end();
      else pipeline(zeroStream(bytes), req).catch(reject);
    });
    sample();
    return { ...result, seconds: (performance.now() - started) / 1000, peakRssBytes, peakSpoolBytes };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Bytes the proxy currently holds in its spool directories. nginx unlinks a temp file right after creating it and
 * keeps writing through the open descriptor, so the directory always looks empty: count the files its processes
 * have open there (/proc/<pid>/fd, deleted or not) plus whatever is still linked in the directories.
 */
export function spooledBytes(proxy: RunningProxy, pids = proxy.pids()): number {
  if (proxy.spoolDirs.length === 0) return 0;
  const seen = new Set<string>();
  let total = 0;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (!proxy.spoolDirs.some((dir) => target.startsWith(`${dir}/`))) continue;
        const info = statSync(`/proc/${pid}/fd/${fd}`);
        const key = `${info.dev}:${info.ino}`;
        if (!seen.has(key)) {
          seen.add(key);
          total += info.size;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return Math.max(total, proxy.spoolDirs.reduce((sum, dir) => sum + dirBytes(dir), 0));
}
