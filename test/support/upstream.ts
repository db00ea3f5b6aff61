// A stand-in for MLflow behind the proxies: a plain node http server that records what reached it
// (method, raw path, headers, body size) and can stream a response of any size without holding it in memory.
import { spawn } from "node:child_process";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface RecordedRequest {
  method: string;
  /** The request target exactly as the proxy sent it (not decoded, not normalised). */
  path: string;
  headers: IncomingHttpHeaders;
  /** Body bytes received, counted as they stream in. */
  bodyBytes: number;
}

export interface Upstream {
  url: string;
  /** host:port, the form MLFLOW_UPSTREAM takes. */
  hostPort: string;
  port: number;
  requests: RecordedRequest[];
  /** Requests whose path is not exactly /health. */
  nonHealth: () => RecordedRequest[];
  stop: () => Promise<void>;
}

export interface UpstreamOptions {
  /** Keep a record of each request (default true; the benchmark turns it off). */
  record?: boolean;
}

/**
 * Routes:
 * - `GET /health` → "OK" (like MLflow).
 * - `GET /stream?bytes=N` → N bytes, written in 1 MiB chunks honouring back-pressure.
 * - anything else → 200 with a JSON summary `{ method, path, bodyBytes }` after the whole body was read.
 */
export async function startUpstream({ record = true }: UpstreamOptions = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  // Like MLflow's own security middleware: the proxies must end up with exactly one copy of each, their own.
  const ownHeaders = { server: "upstream/1.0", "x-frame-options": "DENY", "x-content-type-options": "nosniff" };
  const server: Server = createServer((req, res) => {
    const entry: RecordedRequest = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, bodyBytes: 0 };
    if (record) requests.push(entry);
    req.on("data", (data: Buffer) => (entry.bodyBytes += data.length));
    req.on("end", () => {
      const url = new URL(entry.path, "http://upstream");
      if (url.pathname === "/health") {
        res.writeHead(200, { ...ownHeaders, "content-type": "text/plain", "content-length": "2" }).end("OK");
      } else if (url.pathname === "/stream") {
        let left = Number(url.searchParams.get("bytes") ?? 0);
        res.writeHead(200, { ...ownHeaders, "content-type": "application/octet-stream", "content-length": String(left) });
        const pump = () => {
          while (left > 0) {
            const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
            left -= piece.length;
            if (!res.write(piece)) return void res.once("drain", pump);
          }
          res.end();
        };
        pump();
      } else {
        const body = JSON.stringify({ method: entry.method, path: entry.path, bodyBytes: entry.bodyBytes });
        res.writeHead(200, { ...ownHeaders, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }).end(body);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    port,
    requests,
    nonHealth: () => requests.filter((r) => r.path !== "/health"),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The same upstream in a separate node process (no request records), so a load generator in this process does not
 * share its event loop: what the benchmark uses.
 */
export async function spawnUpstream(): Promise<Pick<Upstream, "url" | "hostPort" | "port" | "stop"> & { pid: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let text = "";
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`upstream process exited with ${code}`)));
    child.stdout!.on("data", (chunk) => {
      text += chunk;
      const match = /^listening (\d+)$/m.exec(text);
      if (match) resolve(Number(match[1]));
    });
  });
  child.removeAllListeners("exit");
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const upstream = await startUpstream({ record: false });
  process.stdout.write(`listening ${upstream.port}\n`);
  process.once("SIGTERM", () => void upstream.stop().then(() => process.exit(0)));
}
