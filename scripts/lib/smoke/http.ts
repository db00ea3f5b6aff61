// The smoke's HTTP layer: node:http(s) with an inactivity timeout, streamed bodies with a known Content-Length
// (MLflow's WSGI artifact handler needs one; the Python client always sends it), and errors that keep what the
// advice needs: the status and body of an answer, or the network error code.
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

/** The server answered, but not with what was expected. */
export class HttpStatusError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    /** The start of the answer's body (at most 2 KiB), for the message and the advice. */
    readonly body: string,
    readonly contentType: string,
    /** Bytes the request tried to send, when it had a body (for the 413 advice). */
    readonly requestBytes?: number,
  ) {
    super(`${method} ${pathOf(url)} answered ${status}${summarizeBody(body)}`);
    this.name = "HttpStatusError";
  }
}

/** No answer: connection refused, DNS, TLS, or no byte for `timeoutMs`. `code` is Node's (ECONNREFUSED, ...) or TIMEOUT. */
export class NetworkError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly code: string,
    detail: string,
    readonly timeoutMs?: number,
  ) {
    super(`${method} ${pathOf(url)}: ${detail}`);
    this.name = "NetworkError";
  }
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  contentType: string;
  body: Buffer;
}

export interface RequestOptions {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a stream of exactly `bodyLength` bytes. */
  body?: Buffer | Readable;
  bodyLength?: number;
  /** Abort when no byte moves for this long (an inactivity timeout, so long transfers are fine). */
  timeoutMs: number;
  /** Consumes the body of a 2xx answer instead of buffering it (downloads); the answer's `body` is then empty. */
  sink?: (response: IncomingMessage) => Promise<void>;
  /** Holds the request while it is in flight, so that an interrupt can cut it. */
  inflight?: Set<ClientRequest>;
}

const MAX_ERROR_BODY = 2048;

/** Sends one request; resolves with any status (callers decide what is an error), rejects only with NetworkError. */
export function send(agents: Agents, options: RequestOptions): Promise<HttpAnswer> {
  const { method, url, timeoutMs } = options;
  const isHttps = url.protocol === "https:";
  const headers: Record<string, string> = { ...options.headers };
  if (Buffer.isBuffer(options.body)) headers["content-length"] = String(options.body.length);
  else if (options.body) headers["content-length"] = String(options.bodyLength ?? 0);

  return new Promise<HttpAnswer>((resolve, reject) => {
    let answered = false;
    let settled = false;
    const fail = (error: NetworkError) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    const request = (isHttps ? httpsRequest : httpRequest)(url, {
      method,
      headers,
      agent: isHttps ? agents.https : agents.http,
    });
    options.inflight?.add(request);
    request.once("close", () => options.inflight?.delete(request));
    request.setTimeout(timeoutMs, () => {
      request.destroy(new NetworkError(method, url.href, "TIMEOUT", `no answer within ${formatMs(timeoutMs)}`, timeoutMs));
    });
    request.on("error", (error: NodeJS.ErrnoException) => {
      // A server may answer (413, 401, ...) before it has read the whole body and then close the connection:
      // the write error that follows is not the story, the answer is.
      if (answered) return;
      fail(error instanceof NetworkError ? error : toNetworkError(method, url.href, error));
    });
    request.on("response", (response) => {
      answered = true;
      const status = response.statusCode ?? 0;
      const contentType = String(response.headers["content-type"] ?? "");
      const body = options.body;
      if (status >= 300 && body && !Buffer.isBuffer(body)) body.unpipe(request), body.destroy();
      const done = (buffer: Buffer) => {
        if (settled) return;
        settled = true;
        resolve({ status, headers: response.headers, contentType, body: buffer });
      };
      response.on("error", (error: NodeJS.ErrnoException) => fail(error instanceof NetworkError ? error : toNetworkError(method, url.href, error)));
      if (options.sink && status >= 200 && status < 300) {
        options.sink(response).then(
          () => done(Buffer.alloc(0)),
          (error) => {
            response.destroy();
            if (settled) return;
            settled = true;
            reject(error);
          },
        );
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const limit = options.sink ? MAX_ERROR_BODY : Infinity;
      response.on("data", (chunk: Buffer) => {
        if (size < limit) chunks.push(chunk), (size += chunk.length);
      });
      response.on("end", () => done(Buffer.concat(chunks)));
    });

    const body = options.body;
    if (!body) request.end();
    else if (Buffer.isBuffer(body)) request.end(body);
    else {
      body.on("error", (error) => request.destroy(error));
      body.pipe(request);
    }
  });
}

export interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
}

export function makeAgents(): Agents {
  return { http: new HttpAgent({ keepAlive: true, maxSockets: 4 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 4 }) };
}

export function destroyAgents(agents: Agents): void {
  agents.http.destroy();
  agents.https.destroy();
}

function toNetworkError(method: string, url: string, error: NodeJS.ErrnoException): NetworkError {
  const code = error.code ?? "ERROR";
  return new NetworkError(method, url, code, `${code === "ERROR" ? "" : `${code} `}${error.message}`.trim());
}

function pathOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.pathname + parsed.search;
  } catch {
    return url;
  }
}

function summarizeBody(body: string): string {
  const envelope = mlflowError(body);
  if (envelope) return `: ${envelope.error_code}: ${envelope.message}`;
  const oneLine = body.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  if (!oneLine) return "";
  return `: ${oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine}`;
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

/** MLflow's JSON error envelope (`{"error_code": ..., "message": ...}`), when the body is one. */
export function mlflowError(body: string): { error_code: string; message: string } | undefined {
  if (!body.trimStart().startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(body) as { error_code?: unknown; message?: unknown };
    if (typeof parsed.error_code === "string") return { error_code: parsed.error_code, message: String(parsed.message ?? "") };
  } catch {
    // not JSON after all
  }
  return undefined;
}
