// An MLflow tracking server double for the smoke tests: a node http server whose answers are built from the REAL
// recordings in test/fixtures/mlflow-3.11/api-transcript.jsonl (bodies, content types, the error envelope, the 403
// "Invalid Host header" answer, the empty get-history page without max_results), stateful enough for the smoke's calls,
// and able to misbehave on demand (403 host check, any status such as 413/502, slow answers, corrupted downloads).
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { s3Client } from "../../scripts/lib/s3-client.ts";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve, sep } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { makeTempDir } from "./tmp.ts";

export const TRANSCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../fixtures/mlflow-3.11/api-transcript.jsonl");

export interface Recording {
  method: string;
  path: string;
  request_body: unknown;
  status: number;
  response_body: unknown;
  response_content_type: string;
  request_headers?: Record<string, string>;
  note?: string;
}

export function loadTranscript(file = TRANSCRIPT): Recording[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Recording);
}

/** What the double does wrong, on demand. Every field is optional; `misbehave({})` restores normal answers. */
export interface Misbehaviour {
  /** Host names MLflow accepts (like its --allowed-hosts); any other Host gets the recorded 403. /health is exempt, as recorded. */
  allowedHosts?: string[];
  /** Answer requests matching `match` (tested against "METHOD /path?query") with this status before doing anything. */
  fail?: { status: number; match?: RegExp; body?: string };
  /** Wait this long before answering requests matching `match`. */
  delay?: { ms: number; match?: RegExp };
  /** Flip one byte in the middle of every artifact download. */
  corruptDownloads?: boolean;
}

export interface DoubleCall {
  method: string;
  path: string;
  host: string;
  status: number;
  authorization: boolean;
  forwardedFor?: string;
  bodyBytes: number;
}

export interface S3Forward {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  /** Key prefix in the bucket (MLflow's --artifacts-destination s3://bucket/prefix). */
  prefix?: string;
}

export interface DoubleOptions {
  /** Copy each uploaded artifact into this bucket, like MLflow's --artifacts-destination s3://... */
  s3?: S3Forward;
  /** What /version answers (default: the recorded one). */
  version?: string;
  /** Require this login on everything but /health (MLflow's basic-auth app; for tests without a proxy). */
  basicAuth?: { username: string; password: string };
  /** Where to listen (default 127.0.0.1 on a free port); the `mlflow` command double (mlflow-double-cli.ts) passes --host/--port. */
  host?: string;
  port?: number;
}

export interface MlflowDouble {
  url: string;
  /** host:port, the MLFLOW_UPSTREAM form the proxies take. */
  hostPort: string;
  port: number;
  calls: DoubleCall[];
  misbehave: (misbehaviour: Misbehaviour) => void;
  /** Live state, for assertions (e.g. that cleanup deleted everything). */
  state: DoubleState;
  artifactsDir: string;
  /** What a smoke run left behind: active experiment/runs, the model, artifact files. Empty after a full cleanup. */
  leftovers: (created: { experimentName: string; modelName: string }) => string[];
  stop: () => Promise<void>;
}

interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: string;
  last_update_time: number;
  creation_time: number;
  tags: KeyValue[];
}
interface KeyValue {
  key: string;
  value: string;
}
interface StoredMetric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}
interface StoredRun {
  info: Record<string, unknown> & { run_id: string; experiment_id: string; status: string; lifecycle_stage: string; artifact_uri: string };
  params: Map<string, string>;
  tags: Map<string, string>;
  metrics: StoredMetric[];
}
interface StoredModel {
  name: string;
  creation_timestamp: number;
  last_updated_timestamp: number;
  tags: KeyValue[];
  versions: Map<string, Record<string, unknown> & { version: string }>;
  aliases: Map<string, string>;
  nextVersion: number;
}

export interface DoubleState {
  experiments: Map<string, Experiment>;
  runs: Map<string, StoredRun>;
  models: Map<string, StoredModel>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

const pageToken = (offset: number) => Buffer.from(JSON.stringify({ offset })).toString("base64");

/** The recordings the double answers with, looked up once. */
function recordedAnswers(recordings: Recording[]) {
  const find = (predicate: (r: Recording) => boolean, what: string) => {
    const found = recordings.find(predicate);
    if (!found) throw new Error(`the transcript has no recording of ${what}`);
    return found;
  };
  const health = find((r) => r.path === "/health" && r.status === 200, "GET /health");
  const version = find((r) => r.path === "/version", "GET /version");
  const invalidHost = find((r) => r.status === 403 && String(r.response_body).includes("Invalid Host header"), "the 403 Invalid Host header answer");
  const unknownRoute = find((r) => r.note === "unknown route", "an unknown route");
  const emptyHistory = find((r) => r.path.startsWith("/api/2.0/mlflow/metrics/get-history") && !r.path.includes("max_results"), "get-history without max_results");
  // The envelope's extra fields (sqlstate, error_class) per error_code, as MLflow sent them.
  const envelopes = new Map<string, Record<string, unknown>>();
  for (const r of recordings) {
    const body = r.response_body as Record<string, unknown> | null;
    if (r.status >= 400 && body && typeof body === "object" && typeof body.error_code === "string") envelopes.set(body.error_code, body);
  }
  const experimentShape = (find((r) => r.path.includes("/experiments/get-by-name") && r.status === 200, "get-by-name") .response_body as { experiment: Experiment }).experiment;
  const runCreate = find((r) => r.path === "/api/2.0/mlflow/runs/create" && r.status === 200, "runs/create").response_body as { run: { info: Record<string, unknown> } };
  const runGet = find((r) => r.path.startsWith("/api/2.0/mlflow/runs/get?") && r.status === 200, "runs/get").response_body as { run: Record<string, unknown> };
  const versionShape = (find((r) => r.path === "/api/2.0/mlflow/model-versions/create" && r.status === 200, "model-versions/create").response_body as { model_version: Record<string, unknown> }).model_version;
  const messages = {
    noExperimentId: messageTemplate(recordings, "No Experiment with id="),
    noExperimentName: messageTemplate(recordings, "Could not find experiment with name"),
    noRun: messageTemplate(recordings, "Run with id="),
    noModel: messageTemplate(recordings, "Registered Model with name="),
    missingName: messageTemplate(recordings, "Missing value for required parameter 'name'"),
    badValue: messageTemplate(recordings, "Invalid value "),
  };
  return { health, version, invalidHost, unknownRoute, emptyHistory, envelopes, experimentShape, runCreate, runGet, versionShape, messages };
}

function messageTemplate(recordings: Recording[], start: string): string {
  for (const r of recordings) {
    const message = (r.response_body as { message?: unknown } | null)?.message;
    if (typeof message === "string" && message.startsWith(start)) return message;
  }
  throw new Error(`the transcript has no error message starting with ${JSON.stringify(start)}`);
}

/** MLflow's JSON for doubles: NaN as "NaN", ±Infinity clamped to ±max double (as recorded in runs/get). */
function metricJson(metric: StoredMetric) {
  const value = Number.isNaN(metric.value) ? "NaN" : metric.value === Infinity ? Number.MAX_VALUE : metric.value === -Infinity ? -Number.MAX_VALUE : metric.value;
  return { key: metric.key, value, timestamp: metric.timestamp, step: metric.step };
}

function parseMetricValue(value: unknown, badValue: string): number {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  // The recorded message for a string value, with the value substituted.
  throw new ApiError(400, "INVALID_PARAMETER_VALUE", badValue.replace(/"[^"]*"/, JSON.stringify(String(value))).replace("'str'", value === null ? "'NoneType'" : `'${typeof value === "string" ? "str" : typeof value}'`));
}

export async function startMlflowDouble(options: DoubleOptions = {}): Promise<MlflowDouble> {
  const recordings = loadTranscript();
  const rec = recordedAnswers(recordings);
  const { dir: artifactsDir, cleanup } = makeTempDir("mlflow-double");
  const state: DoubleState = { experiments: new Map(), runs: new Map(), models: new Map() };
  const calls: DoubleCall[] = [];
  let misbehaviour: Misbehaviour = {};
  let nextExperiment = 1;
  const s3 = options.s3
    ? s3Client(options.s3)
    : undefined;

  const envelope = (error: ApiError) => {
    const recorded = rec.envelopes.get(error.errorCode);
    return { error_code: error.errorCode, message: error.message, sqlstate: recorded?.sqlstate ?? "KAM00", error_class: recorded?.error_class ?? error.errorCode };
  };
  const notFound = (message: string) => new ApiError(404, "RESOURCE_DOES_NOT_EXIST", message);
  const experimentById = (id: unknown) => {
    const experiment = state.experiments.get(String(id));
    if (!experiment) throw notFound(rec.messages.noExperimentId.replace(/id=\S+/, `id=${String(id)}`));
    return experiment;
  };
  const runById = (id: unknown) => {
    const run = state.runs.get(String(id));
    if (!run) throw notFound(rec.messages.noRun.replace(/id=\S+/, `id=${String(id)}`));
    return run;
  };
  const modelByName = (name: unknown) => {
    const model = state.models.get(String(name));
    if (!model) throw notFound(rec.messages.noModel.replace(/name=\S+/, `name=${String(name)}`));
    return model;
  };
  const required = (body: Record<string, unknown>, field: string) => {
    const value = body[field];
    if (value === undefined || value === null || value === "") throw new ApiError(400, "INVALID_PARAMETER_VALUE", rec.messages.missingName.replace("'name'", `'${field}'`));
    return value;
  };
  const runJson = (run: StoredRun, withOutputs: boolean) => {
    const latest = new Map<string, StoredMetric>();
    for (const m of run.metrics) {
      const seen = latest.get(m.key);
      if (!seen || m.step > seen.step || (m.step === seen.step && m.timestamp >= seen.timestamp)) latest.set(m.key, m);
    }
    const data: Record<string, unknown> = {};
    if (latest.size) data.metrics = [...latest.values()].map(metricJson);
    if (run.params.size) data.params = [...run.params].map(([key, value]) => ({ key, value }));
    if (run.tags.size) data.tags = [...run.tags].map(([key, value]) => ({ key, value }));
    return { info: run.info, data, inputs: {}, ...(withOutputs ? { outputs: {} } : {}) };
  };
  const versionJson = (model: StoredModel, version: Record<string, unknown> & { version: string }) => {
    const aliases = [...model.aliases].filter(([, v]) => v === version.version).map(([alias]) => alias);
    return { ...version, ...(aliases.length ? { aliases } : {}) };
  };
  const modelJson = (model: StoredModel) => {
    const latest = [...model.versions.values()].at(-1);
    return {
      name: model.name,
      creation_timestamp: model.creation_timestamp,
      last_updated_timestamp: model.last_updated_timestamp,
      ...(model.tags.length ? { tags: model.tags } : {}),
      ...(latest ? { latest_versions: [latest] } : {}),
      ...(model.aliases.size ? { aliases: [...model.aliases].map(([alias, version]) => ({ alias, version })) } : {}),
    };
  };

  type Handler = (body: Record<string, unknown>, query: URLSearchParams) => unknown;
  const routes: Record<string, Handler> = {
    "POST /experiments/create": (body) => {
      const name = String(required(body, "name"));
      if ([...state.experiments.values()].some((e) => e.name === name)) throw new ApiError(400, "RESOURCE_ALREADY_EXISTS", `Experiment '${name}' already exists.`);
      // Past every id in the state (the stack test's stand-in restores a saved state).
      for (const known of state.experiments.keys()) nextExperiment = Math.max(nextExperiment, Number(known) + 1 || 0);
      const id = String(nextExperiment++);
      const now = Date.now();
      state.experiments.set(id, { ...rec.experimentShape, experiment_id: id, name, artifact_location: `mlflow-artifacts:/${id}`, lifecycle_stage: "active", creation_time: now, last_update_time: now, tags: (body.tags as KeyValue[]) ?? [] });
      return { experiment_id: id };
    },
    "GET /experiments/get": (_, query) => ({ experiment: experimentById(query.get("experiment_id")) }),
    "GET /experiments/get-by-name": (_, query) => {
      const name = query.get("experiment_name") ?? "";
      const experiment = [...state.experiments.values()].find((e) => e.name === name);
      if (!experiment) throw notFound(rec.messages.noExperimentName.replace(/'[^']*'/, `'${name}'`));
      return { experiment };
    },
    "GET /experiments/search": () => ({ experiments: [...state.experiments.values()].filter((e) => e.lifecycle_stage === "active") }),
    "POST /experiments/search": () => ({ experiments: [...state.experiments.values()].filter((e) => e.lifecycle_stage === "active") }),
    "POST /experiments/delete": (body) => {
      const experiment = experimentById(required(body, "experiment_id"));
      experiment.lifecycle_stage = "deleted";
      experiment.last_update_time = Date.now();
      for (const run of state.runs.values()) if (run.info.experiment_id === experiment.experiment_id) run.info.lifecycle_stage = "deleted";
      return {};
    },
    "POST /runs/create": (body) => {
      const experiment = experimentById(required(body, "experiment_id"));
      const runId = randomBytes(16).toString("hex");
      const runName = String(body.run_name ?? `run-${runId.slice(0, 6)}`);
      const template = rec.runCreate.run.info;
      const info = {
        ...template,
        run_uuid: runId,
        experiment_id: experiment.experiment_id,
        run_name: runName,
        status: "RUNNING",
        start_time: Number(body.start_time ?? Date.now()),
        artifact_uri: `${experiment.artifact_location}/${runId}/artifacts`,
        lifecycle_stage: "active",
        run_id: runId,
      };
      const tags = new Map<string, string>(((body.tags as KeyValue[]) ?? []).map((t) => [t.key, t.value]));
      tags.set("mlflow.runName", runName);
      const run: StoredRun = { info, params: new Map(), tags, metrics: [] };
      state.runs.set(runId, run);
      const json = runJson(run, false);
      return { run: { info: json.info, data: { tags: json.data.tags }, inputs: {} } };
    },
    "GET /runs/get": (_, query) => ({ run: runJson(runById(query.get("run_id")), true) }),
    "POST /runs/log-batch": (body) => {
      const run = runById(required(body, "run_id"));
      const metrics = ((body.metrics as Record<string, unknown>[]) ?? []).map((m) => ({
        key: String(m.key),
        value: parseMetricValue(m.value, rec.messages.badValue),
        timestamp: Number(m.timestamp),
        step: Number(m.step ?? 0),
      }));
      for (const p of (body.params as KeyValue[]) ?? []) run.params.set(p.key, p.value);
      for (const t of (body.tags as KeyValue[]) ?? []) run.tags.set(t.key, t.value);
      run.metrics.push(...metrics);
      return {};
    },
    "POST /runs/log-metric": (body) => {
      const run = runById(required(body, "run_id"));
      run.metrics.push({ key: String(body.key), value: parseMetricValue(body.value, rec.messages.badValue), timestamp: Number(body.timestamp), step: Number(body.step ?? 0) });
      return {};
    },
    "POST /runs/log-parameter": (body) => {
      runById(required(body, "run_id")).params.set(String(body.key), String(body.value));
      return {};
    },
    "POST /runs/update": (body) => {
      const run = runById(required(body, "run_id"));
      if (body.status) run.info.status = String(body.status);
      if (body.end_time !== undefined) run.info.end_time = Number(body.end_time);
      return { run_info: run.info };
    },
    "POST /runs/delete": (body) => {
      runById(required(body, "run_id")).info.lifecycle_stage = "deleted";
      return {};
    },
    "POST /runs/search": (body) => {
      const ids = new Set(((body.experiment_ids as string[]) ?? []).map(String));
      return { runs: [...state.runs.values()].filter((r) => ids.has(r.info.experiment_id) && r.info.lifecycle_stage === "active").map((r) => runJson(r, true)) };
    },
    "GET /artifacts/list": (_, query) => {
      const run = runById(query.get("run_id"));
      const root = run.info.artifact_uri.replace(/^mlflow-artifacts:\/*/, "");
      const path = query.get("path") ?? "";
      const files = listArtifacts([root, path].filter(Boolean).join("/")).map((f) => ({ ...f, path: [path, f.path].filter(Boolean).join("/") }));
      return { root_uri: run.info.artifact_uri, ...(files.length ? { files } : {}) };
    },
    "GET /metrics/get-history": (_, query) => {
      const run = runById(query.get("run_id"));
      const key = query.get("metric_key");
      // As recorded from MLflow 3.11: without max_results the answer is a token and no metrics.
      if (!query.has("max_results")) return rec.emptyHistory.response_body;
      const all = run.metrics.filter((m) => m.key === key);
      const pageSize = Number(query.get("max_results"));
      const token = query.get("page_token");
      const offset = token ? Number(JSON.parse(Buffer.from(token, "base64").toString()).offset) : 0;
      const page = all.slice(offset, offset + pageSize).map(metricJson);
      const next = offset + pageSize < all.length ? { next_page_token: pageToken(offset + pageSize) } : {};
      return { ...(page.length ? { metrics: page } : {}), ...next };
    },
    "POST /registered-models/create": (body) => {
      const name = String(required(body, "name"));
      if (state.models.has(name)) throw new ApiError(400, "RESOURCE_ALREADY_EXISTS", `Registered Model (name=${name}) already exists.`);
      const now = Date.now();
      const model: StoredModel = { name, creation_timestamp: now, last_updated_timestamp: now, tags: (body.tags as KeyValue[]) ?? [], versions: new Map(), aliases: new Map(), nextVersion: 1 };
      state.models.set(name, model);
      return { registered_model: { name, creation_timestamp: now, last_updated_timestamp: now, ...(model.tags.length ? { tags: model.tags } : {}) } };
    },
    "GET /registered-models/get": (_, query) => ({ registered_model: modelJson(modelByName(query.get("name"))) }),
    "DELETE /registered-models/delete": (body) => {
      modelByName(required(body, "name"));
      state.models.delete(String(body.name));
      return {};
    },
    "POST /model-versions/create": (body) => {
      const model = modelByName(required(body, "name"));
      const source = String(required(body, "source"));
      const now = Date.now();
      const version = { ...rec.versionShape, name: model.name, version: String(model.nextVersion++), creation_timestamp: now, last_updated_timestamp: now, source, run_id: String(body.run_id ?? "") };
      model.versions.set(version.version, version);
      model.last_updated_timestamp = now;
      return { model_version: version };
    },
    "GET /model-versions/get": (_, query) => {
      const model = modelByName(query.get("name"));
      const version = model.versions.get(query.get("version") ?? "");
      if (!version) throw notFound(`Model Version (name=${model.name}, version=${query.get("version")}) not found`);
      return { model_version: versionJson(model, version) };
    },
    "POST /registered-models/alias": (body) => {
      const model = modelByName(required(body, "name"));
      const version = String(required(body, "version"));
      if (!model.versions.has(version)) throw notFound(`Model Version (name=${model.name}, version=${version}) not found`);
      model.aliases.set(String(required(body, "alias")), version);
      return {};
    },
    "GET /registered-models/alias": (_, query) => {
      const model = modelByName(query.get("name"));
      const version = model.aliases.get(query.get("alias") ?? "");
      if (!version) throw new ApiError(400, "INVALID_PARAMETER_VALUE", `Registered model alias ${query.get("alias")} not found.`);
      return { model_version: versionJson(model, model.versions.get(version)!) };
    },
    "DELETE /registered-models/alias": (body) => {
      modelByName(required(body, "name")).aliases.delete(String(body.alias));
      return {};
    },
  };

  const artifactFile = (relative: string) => {
    const decoded = relative.split("/").filter(Boolean).map(decodeURIComponent);
    if (decoded.some((segment) => segment === ".." || segment === "." || segment.includes(sep))) throw new ApiError(400, "INVALID_PARAMETER_VALUE", `Invalid path: ${relative}`);
    return { file: join(artifactsDir, ...decoded), key: decoded.join("/") };
  };

  function listArtifacts(path: string) {
    const { file } = artifactFile(path);
    let names: string[] = [];
    try {
      names = readdirSync(file).sort();
    } catch {
      // a missing folder lists as nothing, like MLflow's local repository
    }
    return names.map((name) => {
      const stats = statSync(join(file, name));
      return stats.isDirectory() ? { path: name, is_dir: true } : { path: name, is_dir: false, file_size: stats.size };
    });
  }

  async function artifacts(request: IncomingMessage, response: ServerResponse, url: URL, rest: string, meter: { bytes: number }): Promise<number> {
    const method = request.method ?? "GET";
    if (method === "GET" && rest === "") {
      const files = listArtifacts(url.searchParams.get("path") ?? "");
      return json(response, 200, files.length ? { files } : {});
    }
    const { file, key } = artifactFile(rest);
    if (method === "PUT") {
      mkdirSync(dirname(file), { recursive: true });
      const count = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          meter.bytes += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(request, count, createWriteStream(file));
      if (s3 && options.s3) {
        const target = options.s3;
        await s3.send(
          new PutObjectCommand({ Bucket: target.bucket, Key: [target.prefix, key].filter(Boolean).join("/"), Body: createReadStream(file), ContentLength: statSync(file).size }),
        );
      }
      return json(response, 200, {});
    }
    if (method === "GET") {
      let size: number;
      try {
        const stats = statSync(file);
        if (!stats.isFile()) throw new Error("not a file");
        size = stats.size;
      } catch {
        throw notFound(`File ${key} not found`);
      }
      response.writeHead(200, { "content-type": file.endsWith(".txt") ? "text/plain" : "application/octet-stream", "content-length": size });
      const middle = Math.floor(size / 2);
      let position = 0;
      const corrupt = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          if (misbehaviour.corruptDownloads && middle >= position && middle < position + chunk.length) {
            chunk = Buffer.from(chunk);
            chunk[middle - position] ^= 0xff;
          }
          position += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(createReadStream(file), corrupt, response);
      return 200;
    }
    if (method === "DELETE") {
      rmSync(file, { recursive: true, force: true });
      if (s3 && options.s3) {
        // Like MLflow's S3 repository: the object, or everything under the folder.
        const target = options.s3;
        const objectKey = [target.prefix, key].filter(Boolean).join("/");
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: `${objectKey}/` }));
        for (const k of [objectKey, ...(listed.Contents ?? []).map((o) => o.Key!)]) await s3.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: k }));
      }
      return json(response, 200, {});
    }
    return text(response, 405, "Method Not Allowed", "text/plain");
  }

  async function handle(request: IncomingMessage, response: ServerResponse, meter: { bytes: number }): Promise<number> {
    const url = new URL(request.url ?? "/", "http://double");
    const method = request.method ?? "GET";
    const target = `${method} ${url.pathname}${url.search}`;
    if (misbehaviour.delay && (!misbehaviour.delay.match || misbehaviour.delay.match.test(target))) await new Promise((r) => setTimeout(r, misbehaviour.delay!.ms));
    if (misbehaviour.fail && (!misbehaviour.fail.match || misbehaviour.fail.match.test(target))) {
      request.resume();
      return text(response, misbehaviour.fail.status, misbehaviour.fail.body ?? `${misbehaviour.fail.status} from the MLflow double`, "text/plain");
    }
    if (url.pathname === "/health") return text(response, 200, String(rec.health.response_body), rec.health.response_content_type);
    if (misbehaviour.allowedHosts) {
      const host = (request.headers.host ?? "").replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
      if (!misbehaviour.allowedHosts.includes(host)) {
        request.resume();
        return text(response, rec.invalidHost.status, String(rec.invalidHost.response_body), rec.invalidHost.response_content_type);
      }
    }
    if (options.basicAuth) {
      const expected = `Basic ${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString("base64")}`;
      if (request.headers.authorization !== expected) {
        request.resume();
        response.setHeader("www-authenticate", 'Basic realm="mlflow"');
        return text(response, 401, "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.", "text/plain");
      }
    }
    if (url.pathname === "/version") return text(response, 200, options.version ?? String(rec.version.response_body), rec.version.response_content_type);
    try {
      const artifactPrefix = "/api/2.0/mlflow-artifacts/artifacts";
      if (url.pathname === artifactPrefix || url.pathname.startsWith(`${artifactPrefix}/`)) return await artifacts(request, response, url, url.pathname.slice(artifactPrefix.length + 1), meter);
      const apiPrefix = "/api/2.0/mlflow";
      const route = url.pathname.startsWith(`${apiPrefix}/`) ? routes[`${method} ${url.pathname.slice(apiPrefix.length)}`] : undefined;
      if (!route) {
        request.resume();
        return text(response, rec.unknownRoute.status, String(rec.unknownRoute.response_body), rec.unknownRoute.response_content_type);
      }
      const raw = await readBody(request);
      meter.bytes = raw.length;
      let body: Record<string, unknown> = {};
      if (raw.length) {
        try {
          body = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        } catch {
          body = {}; // as recorded: MLflow answers bad JSON like an empty body (missing required field)
        }
      }
      return json(response, 200, routes[`${method} ${url.pathname.slice(apiPrefix.length)}`](body, url.searchParams));
    } catch (error) {
      if (error instanceof ApiError) return json(response, error.status, envelope(error));
      throw error;
    }
  }

  const server: Server = createServer((request, response) => {
    const meter = { bytes: 0 };
    handle(request, response, meter).then(
      (status) => record(status),
      (error) => {
        if (!response.headersSent) text(response, 500, `double error: ${error instanceof Error ? error.message : String(error)}`, "text/plain");
        else response.destroy();
        record(500);
      },
    );
    function record(status: number) {
      calls.push({
        method: request.method ?? "",
        path: request.url ?? "",
        host: request.headers.host ?? "",
        status,
        authorization: Boolean(request.headers.authorization),
        forwardedFor: request.headers["x-forwarded-for"] as string | undefined,
        bodyBytes: meter.bytes,
      });
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolveListen);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    port,
    calls,
    state,
    artifactsDir,
    leftovers: ({ experimentName, modelName }) => {
      const left: string[] = [];
      const experiment = [...state.experiments.values()].find((e) => e.name === experimentName);
      if (experiment?.lifecycle_stage === "active") left.push(`experiment ${experimentName}`);
      for (const run of state.runs.values())
        if (run.info.experiment_id === experiment?.experiment_id && run.info.lifecycle_stage === "active") left.push(`run ${run.info.run_id}`);
      if (state.models.has(modelName)) left.push(`model ${modelName}`);
      if (experiment) {
        const walk = (dir: string): string[] => {
          let entries: string[] = [];
          try {
            entries = readdirSync(dir);
          } catch {
            return [];
          }
          return entries.flatMap((name) => (statSync(join(dir, name)).isDirectory() ? walk(join(dir, name)) : [join(dir, name)]));
        };
        left.push(...walk(join(artifactsDir, experiment.experiment_id)).map((file) => `artifact ${file.slice(artifactsDir.length + 1)}`));
      }
      return left;
    },
    misbehave: (next) => {
      misbehaviour = { ...next };
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      s3?.destroy();
      cleanup();
    },
  };
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolveBody(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function json(response: ServerResponse, status: number, body: unknown): number {
  return text(response, status, JSON.stringify(body), "application/json");
}

function text(response: ServerResponse, status: number, body: string, contentType: string): number {
  response.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) });
  response.end(body);
  return status;
}
