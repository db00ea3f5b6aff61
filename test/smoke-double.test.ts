// The MLflow double answers like the recorded MLflow 3.11: replays the recorded smoke-style session against it and
// compares statuses, content types and the shape of every JSON answer (ids and timestamps differ, fields must not).
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTranscript, startMlflowDouble, type MlflowDouble, type Recording } from "./support/mlflow-double.ts";

let double: MlflowDouble;
beforeAll(async () => {
  double = await startMlflowDouble();
});
afterAll(async () => {
  await double?.stop();
});

/** The shape of a JSON value: objects by their keys (recursively), arrays by their first element, scalars by type. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length ? [shape(value[0])] : [];
  if (value && typeof value === "object") return Object.fromEntries(Object.keys(value).sort().map((key) => [key, shape((value as Record<string, unknown>)[key])]));
  return typeof value;
}

/** One recorded request, sent with node:http so that a recorded Host header goes out as recorded. */
function call(recording: Recording, substitute: (text: string) => string): Promise<{ status: number; contentType: string; text: string }> {
  const body = recording.request_body;
  let payload: Buffer | undefined;
  if (typeof body === "string") payload = /^<(\d+) bytes>$/.test(body) ? Buffer.alloc(Number(/\d+/.exec(body)![0]), 7) : Buffer.from(body);
  else if (body !== null && body !== undefined) payload = Buffer.from(substitute(JSON.stringify(body)));
  const headers: Record<string, string> = { ...recording.request_headers };
  if (typeof body === "object" && body !== null) headers["content-type"] = "application/json";
  if (payload) headers["content-length"] = String(payload.length);
  return new Promise((resolve, reject) => {
    const request = httpRequest(double.url + substitute(recording.path), { method: recording.method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers["content-type"] ?? ""), text: Buffer.concat(chunks).toString("utf8") }));
    });
    request.on("error", reject);
    request.end(payload);
  });
}

describe("the MLflow double against the recorded MLflow 3.11 session", () => {
  it("replays every recorded call with the recorded status, content type and JSON shape", async () => {
    const recordings = loadTranscript();
    expect(recordings.length).toBeGreaterThan(40);
    // Recorded ids → the ids the double hands out, learnt from its answers as the replay goes.
    const ids = new Map<string, string>();
    // Whole tokens only (experiment "3" must not touch the 3s inside a timestamp), all in one pass.
    const substitute = (text: string) => {
      if (!ids.size) return text;
      const pattern = new RegExp(`(?<![\\w.-])(${[...ids.keys()].join("|")})(?![\\w.-])`, "g");
      return text.replace(pattern, (id) => ids.get(id)!);
    };
    // MLflow's default host check: localhost and 127.0.0.1 only, so the recorded Host "evil.example" gets the 403.
    double.misbehave({ allowedHosts: ["localhost", "127.0.0.1"] });
    const learn = (recorded: unknown, got: unknown) => {
      if (Array.isArray(recorded) && Array.isArray(got)) recorded.forEach((r, i) => learn(r, got[i]));
      else if (recorded && typeof recorded === "object" && got && typeof got === "object")
        for (const [key, value] of Object.entries(recorded)) {
          const mine = (got as Record<string, unknown>)[key];
          if ((key === "experiment_id" || key === "run_id") && typeof value === "string" && typeof mine === "string") ids.set(value, mine);
          else learn(value, mine);
        }
    };
    // Experiment names were unique per recording session; the double starts empty, so they can be reused as is.
    const mismatches: string[] = [];
    for (const recording of recordings) {
      const got = await call(recording, substitute);
      const label = `${recording.method} ${recording.path}${recording.note ? ` (${recording.note})` : ""}`;
      if (got.status !== recording.status) mismatches.push(`${label}: status ${got.status}, recorded ${recording.status}: ${got.text.slice(0, 200)}`);
      if (got.contentType.split(";")[0] !== recording.response_content_type.split(";")[0]) mismatches.push(`${label}: content type ${got.contentType}, recorded ${recording.response_content_type}`);
      if (typeof recording.response_body === "string") {
        // Text answers (health, version, 403, 404 page, artifact bytes) are compared exactly.
        if (!/^<\d+ bytes>$/.test(recording.response_body) && got.text !== recording.response_body) mismatches.push(`${label}: body ${JSON.stringify(got.text.slice(0, 100))}, recorded ${JSON.stringify(recording.response_body.slice(0, 100))}`);
      } else {
        let parsed: unknown;
        try {
          parsed = JSON.parse(got.text);
        } catch {
          mismatches.push(`${label}: not JSON: ${got.text.slice(0, 100)}`);
          continue;
        }
        learn(recording.response_body, parsed);
        if (JSON.stringify(shape(parsed)) !== JSON.stringify(shape(recording.response_body)))
          mismatches.push(`${label}: shape ${JSON.stringify(shape(parsed))}, recorded ${JSON.stringify(shape(recording.response_body))}`);
      }
    }
    double.misbehave({});
    expect(mismatches).toEqual([]);
  });

  it("answers error envelopes with the recorded fields and messages", async () => {
    const response = await fetch(`${double.url}/api/2.0/mlflow/runs/get?run_id=ffffffffffffffffffffffffffffffff`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error_code: "RESOURCE_DOES_NOT_EXIST",
      message: "Run with id=ffffffffffffffffffffffffffffffff not found",
      sqlstate: "KAM00",
      error_class: "RESOURCE_NOT_FOUND",
    });
  });

  it("rejects a metric value sent as null (what JSON.stringify(NaN) produces), as MLflow does", async () => {
    const experiment = (await (await fetch(`${double.url}/api/2.0/mlflow/experiments/create`, { method: "POST", body: JSON.stringify({ name: "null-metric" }) })).json()) as { experiment_id: string };
    const run = (await (await fetch(`${double.url}/api/2.0/mlflow/runs/create`, { method: "POST", body: JSON.stringify({ experiment_id: experiment.experiment_id }) })).json()) as { run: { info: { run_id: string } } };
    const response = await fetch(`${double.url}/api/2.0/mlflow/runs/log-batch`, {
      method: "POST",
      body: JSON.stringify({ run_id: run.run.info.run_id, metrics: [{ key: "m", value: NaN, timestamp: 1, step: 0 }] }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error_code: string }).error_code).toBe("INVALID_PARAMETER_VALUE");
  });
});
