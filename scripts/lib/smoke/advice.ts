// What to fix, for each way a call through the proxy fails. One sentence each, naming the setting to change.
import { HttpStatusError, NetworkError, formatMs, mlflowError } from "./http.ts";

export const INVALID_HOST_BODY = "Invalid Host header - possible DNS rebinding attack detected";

export interface AdviceContext {
  url: string;
  user: string;
  /** Whether this call carried the user's credentials (a 401 then means a wrong login, not a missing one). */
  withCredentials?: boolean;
}

/** A failure a check found itself (wrong data, wrong status): the message and, when known, what to fix. */
export class CheckFailure extends Error {
  constructor(
    message: string,
    readonly advice?: string,
  ) {
    super(message);
    this.name = "CheckFailure";
  }
}

export interface Explained {
  message: string;
  advice?: string;
}

/** Turns an error from a check into a one-line message and the fix. Unknown errors keep their message. */
export function explain(error: unknown, context: AdviceContext): Explained {
  if (error instanceof CheckFailure) return { message: error.message, advice: error.advice };
  if (error instanceof HttpStatusError) return { message: error.message, advice: adviceForStatus(error, context) };
  if (error instanceof NetworkError) return { message: error.message, advice: adviceForNetwork(error, context) };
  if (error instanceof Error) return { message: error.message.split("\n")[0] };
  return { message: String(error) };
}

function adviceForStatus(error: HttpStatusError, context: AdviceContext): string | undefined {
  const host = hostOf(context.url);
  switch (error.status) {
    case 401:
      return context.withCredentials === false
        ? undefined
        : `the proxy rejected user '${context.user}': check the password (secrets/proxy_password.${context.user}, --password-file or MLFLOW_TRACKING_PASSWORD) matches the user's hash in secrets/proxy_users.caddy / proxy_users.htpasswd, then restart the proxy`;
    case 403:
      if (error.body.includes("Invalid Host header"))
        return `MLflow refused the Host header '${host}' (DNS-rebinding protection, MLflow >= 3.5): set DOMAIN=${hostname(context.url)} in .env (MLflow allows DOMAIN, localhost, 127.0.0.1 and mlflow) and recreate the stack (docker compose up -d); behind another proxy, make it pass the Host header through`;
      return "the server refused the request (403): check the proxy's access rules for this path";
    case 404:
      if (error.url.includes("/mlflow-artifacts/"))
        return mlflowError(error.body)
          ? undefined
          : "MLflow does not serve artifacts through the proxy: start the server with --serve-artifacts (the stack's mlflow service does) and check the proxy forwards /api/2.0/mlflow-artifacts/";
      return mlflowError(error.body) ? undefined : `nothing answers ${new URL(error.url).pathname} at ${context.url}: check --url points at the MLflow proxy (no extra path) and the proxy forwards /api/ to MLflow`;
    case 413:
      return `the proxy's body size limit rejected a ${error.requestBytes === undefined ? "" : `${formatBytes(error.requestBytes)} `}upload: raise PROXY_MAX_BODY_SIZE in .env (0 = no limit) and recreate the proxy (docker compose up -d)`;
    case 502:
      return "the proxy could not reach MLflow: is the mlflow service up and healthy? (docker compose ps; docker compose logs mlflow)";
    case 503:
      return "MLflow or the proxy is not ready (503): wait for `docker compose up --wait`, then check docker compose logs mlflow";
    case 504:
      return "MLflow did not answer the proxy in time (504): check docker compose logs mlflow (database or storage slow/unreachable); for large artifacts raise the proxy's timeouts";
    default:
      if (error.status >= 500) {
        const envelope = mlflowError(error.body);
        return envelope
          ? "MLflow failed the request: check docker compose logs mlflow (database and artifact storage settings)"
          : "the server failed the request: check docker compose logs proxy and mlflow";
      }
      return undefined;
  }
}

function adviceForNetwork(error: NetworkError, context: AdviceContext): string {
  switch (error.code) {
    case "ECONNREFUSED":
      return `nothing is listening at ${context.url}: start the stack (docker compose up -d --wait) or fix --url / PROXY_PORT in .env`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the name ${hostname(context.url)} does not resolve: check --url / DOMAIN and its DNS record`;
    case "INTERRUPTED":
      return "interrupted by the user; what was created is cleaned up";
    case "TIMEOUT":
      return `no answer within ${formatMs(error.timeoutMs ?? 0)}: MLflow (or the proxy) is stuck or overloaded; check docker compose logs mlflow, or give it longer with --timeout`;
    case "ECONNRESET":
    case "EPIPE":
    case "ERR_STREAM_PREMATURE_CLOSE":
      return "the connection was cut mid-request: check the proxy's body size limit (PROXY_MAX_BODY_SIZE) and timeouts, and docker compose logs proxy";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
      return `${hostname(context.url)} is unreachable: check the server is up and its firewall allows this port`;
    default:
      if (/CERT|SSL|TLS/i.test(error.code))
        return `TLS failed (${error.code}): check the certificate for ${hostname(context.url)} (Caddy gets one when DOMAIN resolves to the server and ports 80/443 are open)`;
      return `the request failed (${error.code}): check the stack is up (docker compose ps)`;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function hostname(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) (value /= 1024), unit++;
  return `${unit === 0 ? value : +value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Parses `2GiB`, `500MB`, `10M`, `1048576` into bytes (binary and decimal units; K/M/G alone are binary). */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(text);
  if (!match) return undefined;
  const [, number, prefix, binary, b] = match;
  const power = " kmgt".indexOf(prefix.toLowerCase() || " ");
  const decimal = prefix !== "" && binary === "" && b !== "";
  const bytes = Number(number) * (decimal ? 1000 : 1024) ** power;
  return Number.isFinite(bytes) && bytes > 0 ? Math.round(bytes) : undefined;
}
