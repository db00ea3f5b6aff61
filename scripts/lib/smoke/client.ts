// A small MLflow REST client: the calls the smoke makes, the way MLflow's own clients make them, through the proxy.
import { createHash } from "node:crypto";
import type { ClientRequest, IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { destroyAgents, HttpStatusError, makeAgents, NetworkError, send as sendRequest, type Agents, type HttpAnswer, type RequestOptions } from "./http.ts";

export interface Credentials {
  username: string;
  password: string;
}

export interface Metric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface RunInfo {
  run_id: string;
  experiment_id: string;
  status: string;
  artifact_uri: string;
  lifecycle_stage: string;
  [field: string]: unknown;
}

export interface Run {
  info: RunInfo;
  data: { metrics?: Metric[]; params?: KeyValue[]; tags?: KeyValue[] };
}

export interface ModelVersion {
  name: string;
  version: string;
  source: string;
  run_id: string;
  status: string;
  aliases?: string[];
  [field: string]: unknown;
}

export interface ArtifactFile {
  path: string;
  is_dir: boolean;
  file_size?: number | string;
}

const API = "/api/2.0/mlflow";
const ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts";
/** get-history page size. MLflow 3.x answers a get-history without max_results with an empty page (see the transcript). */
export const HISTORY_PAGE_SIZE = 1000;

/**
 * MLflow answers an artifact upload only once it has copied it on (to a temporary file, then to the bucket), and no
 * byte moves meanwhile: the inactivity timeout of an upload grows by 1 s per 4 MiB sent (1 GiB: 256 s more), the
 * pace of a small host's disk and S3 (a 1 GiB smoke upload needed more than 30 s but less than 180 s there).
 */
export const UPLOAD_COPY_BYTES_PER_SECOND = 4 * 1024 * 1024;
export function uploadTimeoutMs(bytes: number, timeoutMs: number): number {
  return timeoutMs + Math.ceil((bytes / UPLOAD_COPY_BYTES_PER_SECOND) * 1000);
}

export class MlflowClient {
  private readonly agents: Agents = makeAgents();
  private readonly inflight = new Set<ClientRequest>();
  readonly baseUrl: URL;

  constructor(
    baseUrl: string,
    readonly credentials: Credentials | undefined,
    readonly timeoutMs: number,
  ) {
    this.baseUrl = new URL(baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  }

  close(): void {
    destroyAgents(this.agents);
  }

  /** Cuts the requests in flight (Ctrl-C): each fails with NetworkError code INTERRUPTED. Later requests go out normally. */
  interrupt(): void {
    for (const request of this.inflight) request.destroy(new NetworkError(request.method, `${request.protocol}//${request.host}${request.path}`, "INTERRUPTED", "interrupted"));
  }

  private send(options: RequestOptions): Promise<HttpAnswer> {
    return sendRequest(this.agents, { ...options, inflight: this.inflight });
  }

  url(path: string, query?: Record<string, string | number | undefined>): URL {
    const url = new URL(this.baseUrl.href.replace(/\/$/, "") + path);
    for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
    return url;
  }

  /** Any request; answers with whatever status came back. `auth: null` sends no Authorization header. */
  raw(method: string, path: string, options: { auth?: Credentials | null; query?: Record<string, string | number | undefined>; json?: unknown } = {}): Promise<HttpAnswer> {
    const auth = options.auth === undefined ? this.credentials : options.auth;
    const headers: Record<string, string> = { accept: "application/json, text/plain, */*" };
    if (auth) headers.authorization = basicAuth(auth);
    let body: Buffer | undefined;
    if (options.json !== undefined) {
      body = Buffer.from(JSON.stringify(options.json));
      headers["content-type"] = "application/json";
    }
    return this.send({ method, url: this.url(path, options.query), headers, body, timeoutMs: this.timeoutMs });
  }

  /** A JSON API call with credentials; any status but 200 is an HttpStatusError. */
  async api<T>(method: string, path: string, options: { query?: Record<string, string | number | undefined>; json?: unknown } = {}): Promise<T> {
    const answer = await this.raw(method, `${API}${path}`, options);
    const text = answer.body.toString("utf8");
    if (answer.status !== 200) throw statusError(method, this.url(`${API}${path}`, options.query), answer);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new HttpStatusError(method, this.url(`${API}${path}`, options.query).href, answer.status, `not JSON: ${text.slice(0, 200)}`, answer.contentType);
    }
  }

  async text(path: string, auth?: Credentials | null): Promise<string> {
    const answer = await this.raw("GET", path, { auth });
    if (answer.status !== 200) throw statusError("GET", this.url(path), answer);
    return answer.body.toString("utf8").trim();
  }

  // ---- tracking ----

  async createExperiment(name: string, tags: KeyValue[] = []): Promise<string> {
    const answer = await this.api<{ experiment_id: string }>("POST", "/experiments/create", { json: { name, tags } });
    return answer.experiment_id;
  }

  async experimentIdByName(name: string): Promise<string> {
    const answer = await this.api<{ experiment: { experiment_id: string } }>("GET", "/experiments/get-by-name", { query: { experiment_name: name } });
    return answer.experiment.experiment_id;
  }

  deleteExperiment(experimentId: string): Promise<unknown> {
    return this.api("POST", "/experiments/delete", { json: { experiment_id: experimentId } });
  }

  async createRun(experimentId: string, runName: string, startTime: number, tags: KeyValue[] = []): Promise<Run> {
    const answer = await this.api<{ run: Run }>("POST", "/runs/create", { json: { experiment_id: experimentId, run_name: runName, start_time: startTime, tags } });
    return answer.run;
  }

  logBatch(runId: string, batch: { metrics?: Metric[]; params?: KeyValue[]; tags?: KeyValue[] }): Promise<unknown> {
    const metrics = batch.metrics?.map((metric) => ({ ...metric, value: encodeMetricValue(metric.value) }));
    return this.api("POST", "/runs/log-batch", { json: { run_id: runId, metrics, params: batch.params, tags: batch.tags } });
  }

  async getRun(runId: string): Promise<Run> {
    const answer = await this.api<{ run: Run }>("GET", "/runs/get", { query: { run_id: runId } });
    const run = answer.run;
    run.data.metrics = run.data.metrics?.map(decodeMetric);
    return run;
  }

  /** The full history of one metric, page by page; always sends max_results (without it MLflow 3.x returns nothing). */
  async getMetricHistory(runId: string, key: string, pageSize = HISTORY_PAGE_SIZE): Promise<Metric[]> {
    const metrics: Metric[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const answer = await this.api<{ metrics?: Metric[]; next_page_token?: string }>("GET", "/metrics/get-history", {
        query: { run_id: runId, metric_key: key, max_results: pageSize, page_token: pageToken },
      });
      const got = answer.metrics ?? [];
      metrics.push(...got.map(decodeMetric));
      pageToken = answer.next_page_token;
      if (!pageToken || got.length === 0) break;
    }
    return metrics;
  }

  async updateRun(runId: string, status: string, endTime: number): Promise<RunInfo> {
    const answer = await this.api<{ run_info: RunInfo }>("POST", "/runs/update", { json: { run_id: runId, status, end_time: endTime } });
    return answer.run_info;
  }

  deleteRun(runId: string): Promise<unknown> {
    return this.api("POST", "/runs/delete", { json: { run_id: runId } });
  }

  // ---- artifacts, through MLflow's artifact proxy (mlflow-artifacts:/) ----

  /** Uploads `body` (a buffer, or a stream of exactly `length` bytes) to `path` under the artifact root. */
  async uploadArtifact(path: string, body: Buffer | Readable, length?: number): Promise<void> {
    const url = this.url(`${ARTIFACTS}/${encodePath(path)}`);
    const size = Buffer.isBuffer(body) ? body.length : (length ?? 0);
    const answer = await this.send({
      method: "PUT",
      url,
      headers: { ...this.authHeaders(), "content-type": "application/octet-stream" },
      body,
      bodyLength: size,
      timeoutMs: uploadTimeoutMs(size, this.timeoutMs),
    });
    if (answer.status !== 200) throw statusError("PUT", url, answer, size);
  }

  async listArtifacts(path: string): Promise<ArtifactFile[]> {
    const url = this.url(ARTIFACTS, { path });
    const answer = await this.send({ method: "GET", url, headers: this.authHeaders(), timeoutMs: this.timeoutMs });
    if (answer.status !== 200) throw statusError("GET", url, answer);
    return (JSON.parse(answer.body.toString("utf8")) as { files?: ArtifactFile[] }).files ?? [];
  }

  /** Streams an artifact down, hashing it on the way (never held in memory). */
  async downloadArtifact(path: string, onBytes?: (total: number) => void): Promise<{ sha256: string; bytes: number }> {
    const url = this.url(`${ARTIFACTS}/${encodePath(path)}`);
    const hash = createHash("sha256");
    let bytes = 0;
    const sink = async (response: IncomingMessage) => {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        onBytes?.(bytes);
      }
    };
    const answer = await this.send({ method: "GET", url, headers: this.authHeaders(), timeoutMs: this.timeoutMs, sink });
    if (answer.status !== 200) throw statusError("GET", url, answer);
    return { sha256: hash.digest("hex"), bytes };
  }

  async deleteArtifact(path: string): Promise<void> {
    const url = this.url(`${ARTIFACTS}/${encodePath(path)}`);
    const answer = await this.send({ method: "DELETE", url, headers: this.authHeaders(), timeoutMs: this.timeoutMs });
    if (answer.status !== 200) throw statusError("DELETE", url, answer);
  }

  // ---- model registry ----

  createRegisteredModel(name: string): Promise<unknown> {
    return this.api("POST", "/registered-models/create", { json: { name } });
  }

  async createModelVersion(name: string, source: string, runId: string): Promise<ModelVersion> {
    const answer = await this.api<{ model_version: ModelVersion }>("POST", "/model-versions/create", { json: { name, source, run_id: runId } });
    return answer.model_version;
  }

  async getModelVersion(name: string, version: string): Promise<ModelVersion> {
    const answer = await this.api<{ model_version: ModelVersion }>("GET", "/model-versions/get", { query: { name, version } });
    return answer.model_version;
  }

  setAlias(name: string, alias: string, version: string): Promise<unknown> {
    return this.api("POST", "/registered-models/alias", { json: { name, alias, version } });
  }

  async getByAlias(name: string, alias: string): Promise<ModelVersion> {
    const answer = await this.api<{ model_version: ModelVersion }>("GET", "/registered-models/alias", { query: { name, alias } });
    return answer.model_version;
  }

  /** Deletes the model with its versions and aliases (a hard delete, unlike experiments and runs). */
  deleteRegisteredModel(name: string): Promise<unknown> {
    return this.api("DELETE", "/registered-models/delete", { json: { name } });
  }

  private authHeaders(): Record<string, string> {
    return this.credentials ? { authorization: basicAuth(this.credentials) } : {};
  }
}

export function basicAuth({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

function statusError(method: string, url: URL, answer: HttpAnswer, requestBytes?: number): HttpStatusError {
  return new HttpStatusError(method, url.href, answer.status, answer.body.subarray(0, 2048).toString("utf8"), answer.contentType, requestBytes);
}

/** Each path segment percent-encoded, slashes kept. */
export function encodePath(path: string): string {
  return path.split("/").filter(Boolean).map(encodeURIComponent).join("/");
}

/** MLflow's JSON carries non-finite doubles as the strings "NaN", "Infinity", "-Infinity" (JSON.stringify would send null). */
export function encodeMetricValue(value: number): number | string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  return value;
}

export function decodeMetricValue(value: unknown): number {
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return Number(value);
}

function decodeMetric(metric: Metric): Metric {
  return { key: metric.key, value: decodeMetricValue(metric.value), timestamp: Number(metric.timestamp), step: Number(metric.step ?? 0) };
}

/**
 * The artifact-proxy path of an artifact URI: `mlflow-artifacts:/5/<run>/artifacts` → `5/<run>/artifacts`.
 * Undefined when the URI is not proxied (s3://, file:, ...): clients would then need direct storage access.
 */
export function proxiedArtifactPath(artifactUri: string): string | undefined {
  const match = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/.exec(artifactUri);
  return match ? match[1].replace(/\/+$/, "") : undefined;
}
