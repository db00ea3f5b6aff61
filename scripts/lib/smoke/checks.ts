// The smoke test itself: named, timed checks against a deployed MLflow, through its proxy, as MLflow clients use it.
// Each check passes, fails (with what to fix) or is skipped (with why); cleanup runs whatever happened before it.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { CheckFailure, explain, formatBytes, type AdviceContext } from "./advice.ts";
import { generatedBody, sha256 } from "./bytes.ts";
import { MlflowClient, proxiedArtifactPath, type KeyValue, type Metric, type ModelVersion, type Run } from "./client.ts";
import { HttpStatusError, NetworkError } from "./http.ts";
import { headArtifactObject, type S3Target } from "./s3.ts";

export type CheckStatus = "pass" | "fail" | "skip";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  ms: number;
  /** What was seen (pass), what went wrong (fail), or why it did not run (skip). */
  detail?: string;
  /** What to change, for a failure. */
  advice?: string;
  /** Something worth knowing that does not fail the run (e.g. a version mismatch). */
  warning?: string;
}

export interface SmokeSettings {
  url: string;
  username: string;
  password: string;
  /** MLFLOW_VERSION from .env, when known: /version is compared against it. */
  expectedVersion?: string;
  /** Per-request inactivity timeout. */
  timeoutMs: number;
  /** --large: bytes to stream up and down. */
  largeBytes?: number;
  keep: boolean;
  /** Where to look for the artifact in storage, or why that check is skipped. */
  s3: S3Target | { skip: string };
}

export interface SmokeHooks {
  onResult?: (result: CheckResult) => void;
  /** Progress of long work (the --large transfer), a line at a time. */
  onProgress?: (line: string) => void;
  /** Interrupt (Ctrl-C): cut the request in flight, skip the remaining checks, still clean up. */
  signal?: AbortSignal;
}

export interface SmokeReport {
  ok: boolean;
  url: string;
  user: string;
  totalMs: number;
  counts: Record<CheckStatus, number>;
  results: CheckResult[];
  /** What the run created (left in place with --keep). */
  created: { experimentName: string; experimentId?: string; runId?: string; modelName: string };
}

interface Outcome {
  detail?: string;
  warning?: string;
  skip?: string;
}

interface Check {
  name: string;
  /** Checks that must have passed for this one to mean anything. */
  needs?: string[];
  /** Runs even when the server is unreachable (cleanup decides for itself). */
  always?: boolean;
  run: () => Promise<Outcome | void>;
}

export const CHECK_NAMES = [
  "health",
  "auth: no credentials",
  "auth: wrong password",
  "version",
  "create experiment",
  "create run",
  "log-batch",
  "read run back",
  "metric history",
  "finish run",
  "artifact upload",
  "artifact list",
  "artifact download",
  "large artifact",
  "artifact in bucket",
  "register model version",
  "set alias",
  "read alias back",
  "cleanup",
] as const;

const STEPS = 5;
const ALIAS = "smoke";

export async function runSmoke(settings: SmokeSettings, hooks: SmokeHooks = {}): Promise<SmokeReport> {
  const started = performance.now();
  const stamp = `${new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "")}-${randomBytes(3).toString("hex")}`;
  const client = new MlflowClient(settings.url, { username: settings.username, password: settings.password }, settings.timeoutMs);
  const context: AdviceContext = { url: settings.url, user: settings.username };

  const state = {
    experimentName: `smoke-${stamp}`,
    modelName: `smoke-model-${stamp}`,
    experimentId: undefined as string | undefined,
    run: undefined as Run | undefined,
    runFinished: false,
    artifactRoot: "",
    uploaded: [] as string[],
    model: { path: "model/model.bin", bytes: randomBytes(64 * 1024) },
    modelCreated: false,
    version: undefined as ModelVersion | undefined,
    unreachable: undefined as string | undefined,
    createInDoubt: false,
  };
  const t0 = Date.now();
  const metrics: Metric[] = [];
  const lossValues = [1, 0.5, 0.25, 0.125, 0.0625];
  const scoreValues = [0.1, NaN, 0.3, 0.4, NaN];
  for (let step = 0; step < STEPS; step++) {
    metrics.push({ key: "loss", value: lossValues[step], timestamp: t0 + step, step });
    metrics.push({ key: "score", value: scoreValues[step], timestamp: t0 + step, step });
  }
  const params: KeyValue[] = [
    { key: "lr", value: "0.01" },
    { key: "unicode", value: "héllo ✓ 日本" },
    { key: "stamp", value: stamp },
  ];
  const tags: KeyValue[] = [
    { key: "smoke.stage", value: "log-batch" },
    { key: "smoke.note", value: "written by npm run smoke; deleted unless --keep" },
  ];
  const requireRun = () => {
    if (!state.run) throw new Error("no run");
    return state.run;
  };
  const artifact = (path: string) => `${state.artifactRoot}/${path}`;

  const checks: Check[] = [
    {
      name: "health",
      run: async () => {
        const answer = await client.raw("GET", "/health", { auth: null });
        const body = answer.body.toString("utf8").trim();
        if (answer.status === 401)
          throw new CheckFailure("/health asks for a login (401)", "keep /health open in the proxy (health checks and load balancers call it without credentials)");
        if (answer.status !== 200) throw statusFailure("GET /health without credentials", 200, answer.status, body, context);
        return { detail: `200 ${JSON.stringify(body.slice(0, 40))}` };
      },
    },
    {
      name: "auth: no credentials",
      run: async () => expect401(await client.raw("GET", "/api/2.0/mlflow/experiments/search", { auth: null, query: { max_results: 1 } }), "without credentials", context),
    },
    {
      name: "auth: wrong password",
      run: async () => {
        const wrong = { username: settings.username, password: `${settings.password}-wrong-${randomBytes(4).toString("hex")}` };
        return expect401(await client.raw("GET", "/api/2.0/mlflow/experiments/search", { auth: wrong, query: { max_results: 1 } }), "with a wrong password", context);
      },
    },
    {
      name: "version",
      run: async () => {
        const version = await client.text("/version");
        if (!/^\d+\.\d+/.test(version)) throw new CheckFailure(`/version answered ${JSON.stringify(version.slice(0, 80))}, not a version`, "check --url points at MLflow behind the proxy");
        if (settings.expectedVersion && version !== settings.expectedVersion)
          return {
            detail: version,
            warning: `the server runs ${version}, .env says MLFLOW_VERSION=${settings.expectedVersion} (rebuild: docker compose build mlflow && docker compose up -d)`,
          };
        return { detail: settings.expectedVersion ? `${version} (= MLFLOW_VERSION)` : version };
      },
    },
    {
      name: "create experiment",
      run: async () => {
        try {
          state.experimentId = await client.createExperiment(state.experimentName, [{ key: "smoke", value: "true" }]);
        } catch (error) {
          state.createInDoubt = error instanceof NetworkError;
          throw error;
        }
        return { detail: `${state.experimentName} (id ${state.experimentId})` };
      },
    },
    {
      name: "create run",
      needs: ["create experiment"],
      run: async () => {
        state.run = await client.createRun(state.experimentId!, "smoke", t0);
        const path = proxiedArtifactPath(state.run.info.artifact_uri);
        if (path === undefined)
          throw new CheckFailure(
            `run ${state.run.info.run_id} has artifact_uri ${state.run.info.artifact_uri}, not mlflow-artifacts:/`,
            "start MLflow with --serve-artifacts and --default-artifact-root mlflow-artifacts:/ so clients upload through the proxy, not straight to storage",
          );
        state.artifactRoot = path;
        return { detail: `${state.run.info.run_id}, artifacts at ${state.run.info.artifact_uri}` };
      },
    },
    {
      name: "log-batch",
      needs: ["create run"],
      run: async () => {
        await client.logBatch(requireRun().info.run_id, { metrics, params, tags });
        return { detail: `${params.length} params, ${tags.length} tags, ${metrics.length} metric values over ${STEPS} steps (incl. NaN)` };
      },
    },
    {
      name: "read run back",
      needs: ["log-batch"],
      run: async () => {
        const run = await client.getRun(requireRun().info.run_id);
        const problems: string[] = [];
        const gotParams = new Map((run.data.params ?? []).map((p) => [p.key, p.value]));
        for (const param of params)
          if (gotParams.get(param.key) !== param.value) problems.push(`param ${param.key}: sent ${JSON.stringify(param.value)}, got ${JSON.stringify(gotParams.get(param.key))}`);
        const gotTags = new Map((run.data.tags ?? []).map((t) => [t.key, t.value]));
        for (const tag of tags) if (gotTags.get(tag.key) !== tag.value) problems.push(`tag ${tag.key}: sent ${JSON.stringify(tag.value)}, got ${JSON.stringify(gotTags.get(tag.key))}`);
        const latest = new Map((run.data.metrics ?? []).map((m) => [m.key, m]));
        for (const key of ["loss", "score"]) {
          const sent = metrics.filter((m) => m.key === key).at(-1)!;
          const got = latest.get(key);
          if (!got || !sameMetric(sent, got)) problems.push(`latest ${key}: sent ${describeMetric(sent)}, got ${got ? describeMetric(got) : "nothing"}`);
        }
        if (problems.length) throw new CheckFailure(`run read back differs: ${problems.join("; ")}`, DATA_ADVICE);
        return { detail: `params, tags and latest metrics match` };
      },
    },
    {
      name: "metric history",
      needs: ["log-batch"],
      run: async () => {
        const problems: string[] = [];
        for (const key of ["loss", "score"]) {
          const sent = metrics.filter((m) => m.key === key);
          const got = (await client.getMetricHistory(requireRun().info.run_id, key)).sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
          if (got.length !== sent.length) problems.push(`${key}: sent ${sent.length} values, got ${got.length}`);
          else
            sent.forEach((m, i) => {
              if (!sameMetric(m, got[i])) problems.push(`${key}@${m.step}: sent ${describeMetric(m)}, got ${describeMetric(got[i])}`);
            });
        }
        if (problems.length) throw new CheckFailure(`metric history differs: ${problems.join("; ")}`, DATA_ADVICE);
        return { detail: `${metrics.length} values match exactly (NaN kept)` };
      },
    },
    {
      name: "finish run",
      needs: ["create run"],
      run: async () => {
        const info = await client.updateRun(requireRun().info.run_id, "FINISHED", Date.now());
        if (info.status !== "FINISHED") throw new CheckFailure(`runs/update answered status ${info.status}, expected FINISHED`);
        state.runFinished = true;
        return { detail: "FINISHED" };
      },
    },
    {
      name: "artifact upload",
      needs: ["create run"],
      run: async () => {
        const mlmodel = Buffer.from(`# written by npm run smoke ${stamp}\nartifact_path: model\nflavors: {}\n`);
        for (const [path, bytes] of [
          ["model/MLmodel", mlmodel],
          [state.model.path, state.model.bytes],
        ] as const) {
          state.uploaded.push(artifact(path));
          await client.uploadArtifact(artifact(path), bytes);
        }
        return { detail: `${artifact(state.model.path)} (${formatBytes(state.model.bytes.length)}) and model/MLmodel` };
      },
    },
    {
      name: "artifact list",
      needs: ["artifact upload"],
      run: async () => {
        const files = await client.listArtifacts(artifact("model"));
        const listed = files.find((f) => f.path === "model.bin" || f.path.endsWith("/model.bin"));
        if (!listed) throw new CheckFailure(`listing ${artifact("model")} does not show model.bin (got: ${files.map((f) => f.path).join(", ") || "nothing"})`, STORAGE_ADVICE);
        if (Number(listed.file_size) !== state.model.bytes.length)
          throw new CheckFailure(`model.bin is listed with ${listed.file_size} bytes, uploaded ${state.model.bytes.length}`, STORAGE_ADVICE);
        return { detail: files.map((f) => `${f.path} (${f.is_dir ? "dir" : `${f.file_size} B`})`).join(", ") };
      },
    },
    {
      name: "artifact download",
      needs: ["artifact upload"],
      run: async () => {
        const got = await client.downloadArtifact(artifact(state.model.path));
        const want = sha256(state.model.bytes);
        if (got.sha256 !== want || got.bytes !== state.model.bytes.length)
          throw new CheckFailure(
            `downloaded ${got.bytes} bytes with sha256 ${got.sha256.slice(0, 12)}…, uploaded ${state.model.bytes.length} bytes with ${want.slice(0, 12)}…`,
            "something between the client and storage changes artifacts: check the proxy does not transform bodies (compression, buffering to a full disk) and the bucket's storage",
          );
        return { detail: `sha256 ${want.slice(0, 12)}… matches` };
      },
    },
    {
      name: "large artifact",
      needs: ["create run"],
      run: async () => {
        const size = settings.largeBytes;
        if (!size) return { skip: "pass --large SIZE (e.g. --large 2GiB) to stream a big artifact through the proxy's body limits and timeouts" };
        const path = artifact("smoke/large.bin");
        const progress = progressPrinter(hooks.onProgress, size);
        const body = generatedBody(size, (sent) => progress("up", sent));
        state.uploaded.push(path);
        const upStart = performance.now();
        await client.uploadArtifact(path, body.stream, size);
        const upSeconds = (performance.now() - upStart) / 1000;
        const downStart = performance.now();
        const got = await client.downloadArtifact(path, (received) => progress("down", received));
        const downSeconds = (performance.now() - downStart) / 1000;
        if (got.bytes !== size || got.sha256 !== body.sha256())
          throw new CheckFailure(
            `downloaded ${formatBytes(got.bytes)} with sha256 ${got.sha256.slice(0, 12)}…, uploaded ${formatBytes(size)} with ${body.sha256().slice(0, 12)}…`,
            "the large artifact came back different: check the proxy's body limit and timeouts (a cut upload can leave a partial object) and storage free space",
          );
        return { detail: `${formatBytes(size)}: up ${rate(size, upSeconds)}, down ${rate(size, downSeconds)}, sha256 matches` };
      },
    },
    {
      name: "artifact in bucket",
      needs: ["artifact upload"],
      run: async () => {
        if ("skip" in settings.s3) return { skip: settings.s3.skip };
        return { detail: await headArtifactObject(settings.s3, artifact(state.model.path), state.model.bytes.length, settings.timeoutMs) };
      },
    },
    {
      name: "register model version",
      needs: ["artifact upload"],
      run: async () => {
        await client.createRegisteredModel(state.modelName);
        state.modelCreated = true;
        const source = `${requireRun().info.artifact_uri.replace(/\/+$/, "")}/model`;
        let version = await client.createModelVersion(state.modelName, source, requireRun().info.run_id);
        const deadline = Date.now() + settings.timeoutMs;
        while (version.status === "PENDING_REGISTRATION" && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          version = await client.getModelVersion(state.modelName, version.version);
        }
        if (version.status !== "READY") throw new CheckFailure(`model version ${version.version} is ${version.status}, not READY`, "check docker compose logs mlflow");
        state.version = version;
        return { detail: `${state.modelName} v${version.version} from ${source}` };
      },
    },
    {
      name: "set alias",
      needs: ["register model version"],
      run: async () => {
        await client.setAlias(state.modelName, ALIAS, state.version!.version);
        return { detail: `@${ALIAS} → v${state.version!.version}` };
      },
    },
    {
      name: "read alias back",
      needs: ["set alias"],
      run: async () => {
        const got = await client.getByAlias(state.modelName, ALIAS);
        const want = state.version!;
        const problems = (["version", "source", "run_id"] as const).filter((field) => got[field] !== want[field]).map((field) => `${field} ${JSON.stringify(got[field])} ≠ ${JSON.stringify(want[field])}`);
        if (problems.length) throw new CheckFailure(`@${ALIAS} resolves to a different version: ${problems.join(", ")}`, DATA_ADVICE);
        return { detail: `@${ALIAS} → v${got.version}, source and run match` };
      },
    },
    {
      name: "cleanup",
      always: true,
      run: async () => {
        if (!state.experimentId && state.createInDoubt) {
          // The create timed out or was cut: MLflow may still have made it. Look once, delete if it is there.
          try {
            state.experimentId = await client.experimentIdByName(state.experimentName);
          } catch {
            // not found (or still unreachable): report it below
          }
          if (!state.experimentId)
            return { skip: `the experiment was not found; if the timed-out create of ${state.experimentName} completes later, delete it by hand` };
        }
        if (!state.experimentId) return { skip: "nothing was created" };
        if (settings.keep) return { skip: `--keep: left experiment ${state.experimentName} (id ${state.experimentId})${state.modelCreated ? ` and model ${state.modelName}` : ""}` };
        return { detail: await cleanup() };
      },
    },
  ];

  async function cleanup(): Promise<string> {
    const done: string[] = [];
    const failed: unknown[] = [];
    const attempt = async (what: string, action: () => Promise<unknown>) => {
      try {
        await action();
        done.push(what);
      } catch (error) {
        failed.push(error);
      }
    };
    if (state.modelCreated) await attempt(`model ${state.modelName}`, () => client.deleteRegisteredModel(state.modelName));
    let artifacts = 0;
    for (const path of state.uploaded) await attempt("", () => client.deleteArtifact(path).then(() => artifacts++));
    if (artifacts) done.push(`${artifacts} artifact${artifacts === 1 ? "" : "s"}`);
    if (state.run) {
      const runId = state.run.info.run_id;
      if (!state.runFinished) await attempt("", () => client.updateRun(runId, "FAILED", Date.now()));
      await attempt("run", () => client.deleteRun(runId));
    }
    await attempt("experiment", () => client.deleteExperiment(state.experimentId!));
    if (failed.length) {
      const first = explain(failed[0], { ...context, withCredentials: true });
      throw new CheckFailure(
        `${failed.length} delete(s) failed, first: ${first.message}; remove experiment ${state.experimentName}${state.modelCreated ? ` and model ${state.modelName}` : ""} by hand`,
        first.advice,
      );
    }
    return `deleted ${done.filter(Boolean).join(", ")} (MLflow keeps deleted runs and experiments until \`mlflow gc\`)`;
  }

  const results: CheckResult[] = [];
  const passed = new Set<string>();
  const onAbort = () => client.interrupt();
  hooks.signal?.addEventListener("abort", onAbort);
  try {
    for (const check of checks) {
      const result = await runOne(check);
      if (result.status === "pass") passed.add(check.name);
      results.push(result);
      hooks.onResult?.(result);
    }
  } finally {
    hooks.signal?.removeEventListener("abort", onAbort);
    client.close();
  }

  async function runOne(check: Check): Promise<CheckResult> {
    if (hooks.signal?.aborted && !check.always) return { name: check.name, status: "skip", ms: 0, detail: "interrupted" };
    if (state.unreachable && !check.always) return { name: check.name, status: "skip", ms: 0, detail: `server unreachable (${state.unreachable})` };
    const missing = (check.needs ?? []).find((need) => !passed.has(need));
    if (missing) return { name: check.name, status: "skip", ms: 0, detail: `needs "${missing}", which did not pass` };
    const begin = performance.now();
    try {
      const outcome = (await check.run()) ?? {};
      const ms = Math.round(performance.now() - begin);
      if (outcome.skip) return { name: check.name, status: "skip", ms, detail: outcome.skip };
      return { name: check.name, status: "pass", ms, detail: outcome.detail, ...(outcome.warning ? { warning: outcome.warning } : {}) };
    } catch (error) {
      const ms = Math.round(performance.now() - begin);
      if (check.name === "health" && error instanceof NetworkError && error.code !== "TIMEOUT") state.unreachable = error.code;
      const { message, advice } = explain(error, { ...context, withCredentials: true });
      return { name: check.name, status: "fail", ms, detail: message, ...(advice ? { advice } : {}) };
    }
  }

  const counts = { pass: 0, fail: 0, skip: 0 };
  for (const result of results) counts[result.status]++;
  return {
    ok: counts.fail === 0,
    url: settings.url,
    user: settings.username,
    totalMs: Math.round(performance.now() - started),
    counts,
    results,
    created: { experimentName: state.experimentName, experimentId: state.experimentId, runId: state.run?.info.run_id, modelName: state.modelName },
  };
}

const DATA_ADVICE = "what MLflow stored is not what was sent: check the database encoding is UTF8 and that nothing between client and MLflow rewrites JSON bodies";
const STORAGE_ADVICE = "the upload was accepted but storage does not show it: check MLflow's --artifacts-destination, MLFLOW_S3_ENDPOINT_URL and the bucket";

function expect401(answer: { status: number; body: Buffer }, how: string, context: AdviceContext): Outcome {
  if (answer.status === 401) return { detail: `401 ${how}` };
  if (answer.status === 200)
    throw new CheckFailure(
      `the API answered 200 ${how}: nothing checks logins`,
      "the proxy must require basic auth on everything but /health: check --url points at the proxy (not at MLflow's own port) and the proxy's users file (secrets/proxy_users.*)",
    );
  throw statusFailure(`GET /api/2.0/mlflow/experiments/search ${how}`, 401, answer.status, answer.body.toString("utf8"), { ...context, withCredentials: false });
}

/** An unexpected status as a failure that still carries the per-status advice (403 Invalid Host header, 502, ...). */
function statusFailure(what: string, expected: number, status: number, body: string, context: AdviceContext): CheckFailure {
  const [method, path] = what.split(" ");
  const { advice } = explain(new HttpStatusError(method, new URL(path, context.url).href, status, body, ""), context);
  const shown = body.replace(/\s+/g, " ").trim().slice(0, 120);
  return new CheckFailure(`${what}: expected ${expected}, got ${status}${shown ? ` ${JSON.stringify(shown)}` : ""}`, advice);
}

function sameMetric(a: Metric, b: Metric): boolean {
  return Object.is(a.value, b.value) && a.step === b.step && a.timestamp === b.timestamp;
}

function describeMetric(metric: Metric): string {
  return `${metric.value}@step ${metric.step} t=${metric.timestamp}`;
}

function rate(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / Math.max(seconds, 1e-6)).toFixed(1)} MB/s`;
}

/** A progress line at most every 2 s for a long transfer. */
function progressPrinter(print: ((line: string) => void) | undefined, total: number) {
  let last = performance.now();
  let lastDirection = "";
  const begin = { up: performance.now(), down: 0 };
  return (direction: "up" | "down", bytes: number) => {
    if (!print) return;
    const now = performance.now();
    if (direction !== lastDirection) {
      lastDirection = direction;
      last = now;
      if (direction === "down") begin.down = now;
      return;
    }
    if (now - last < 2000 || bytes >= total) return;
    last = now;
    print(`large artifact: ${direction} ${formatBytes(bytes)} / ${formatBytes(total)} (${rate(bytes, (now - begin[direction]) / 1000)})`);
  };
}
