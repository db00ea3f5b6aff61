// npm run smoke's checks against the MLflow double directly (the double plays MLflow's own basic-auth app here;
// test/smoke-proxy.test.ts puts our real Caddy and nginx in front). Each misbehaviour must fail the right check
// with the right advice, and cleanup must still remove everything.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runSmoke, type CheckResult, type SmokeReport, type SmokeSettings } from "../scripts/lib/smoke/checks.ts";
import { uploadTimeoutMs } from "../scripts/lib/smoke/client.ts";
import { DEFAULT_TIMEOUT_MS } from "../scripts/lib/smoke/config.ts";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "./support/ports.ts";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { startMlflowDouble, type MlflowDouble } from "./support/mlflow-double.ts";

const LOGIN = { username: "alice", password: "correct horse" };
let double: MlflowDouble;

beforeAll(async () => {
  double = await startMlflowDouble({ basicAuth: LOGIN });
});
afterAll(async () => {
  await double?.stop();
});
afterEach(() => double.misbehave({}));

function settings(overrides: Partial<SmokeSettings> = {}): SmokeSettings {
  return { url: double.url, ...LOGIN, timeoutMs: 5000, keep: false, s3: { skip: "no S3 in this test" }, ...overrides };
}

function check(report: SmokeReport, name: string): CheckResult {
  const found = report.results.find((r) => r.name === name);
  if (!found) throw new Error(`no check named ${name}`);
  return found;
}

function assertCleanedUp(target: MlflowDouble, report: SmokeReport) {
  expect(check(report, "cleanup"), JSON.stringify(check(report, "cleanup"))).toMatchObject({ status: "pass" });
  expect(report.created.experimentId).toBeDefined();
  expect(target.leftovers(report.created)).toEqual([]);
}

function failed(report: SmokeReport): string[] {
  return report.results.filter((r) => r.status === "fail").map((r) => r.name);
}

describe("smoke against a well-behaved MLflow", () => {
  it("passes every check, compares data exactly and deletes what it created", async () => {
    const seen: string[] = [];
    const report = await runSmoke(settings({ largeBytes: 3 * 1024 * 1024 + 17 }), { onResult: (r) => seen.push(r.name) });
    expect(failed(report), JSON.stringify(report.results, null, 1)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(seen).toEqual(report.results.map((r) => r.name));
    expect(report.results.filter((r) => r.status === "skip").map((r) => r.name)).toEqual(["artifact in bucket"]);
    expect(check(report, "large artifact").detail).toMatch(/^3 MiB: up [\d.]+ MB\/s, down [\d.]+ MB\/s, sha256 matches$/);
    // The large body really went through, streamed: the double received exactly that many bytes in one PUT.
    expect(double.calls.some((c) => c.method === "PUT" && c.bodyBytes === 3 * 1024 * 1024 + 17)).toBe(true);
    // get-history always carries max_results (without it MLflow 3.x answers an empty page).
    const history = double.calls.filter((c) => c.path.includes("/metrics/get-history"));
    expect(history.length).toBeGreaterThan(0);
    expect(history.every((c) => c.path.includes("max_results="))).toBe(true);
    assertCleanedUp(double, report);
  });

  it("--keep leaves the experiment and the model in place", async () => {
    const report = await runSmoke(settings({ keep: true }));
    expect(report.ok).toBe(true);
    expect(check(report, "cleanup")).toMatchObject({ status: "skip" });
    expect(check(report, "cleanup").detail).toContain(report.created.experimentName);
    expect([...double.state.experiments.values()].find((e) => e.name === report.created.experimentName)?.lifecycle_stage).toBe("active");
    expect(double.state.models.has(report.created.modelName)).toBe(true);
  });

  it("warns, without failing, when /version differs from MLFLOW_VERSION", async () => {
    const report = await runSmoke(settings({ expectedVersion: "3.15.1" }));
    expect(report.ok).toBe(true);
    expect(check(report, "version")).toMatchObject({ status: "pass", detail: "3.11.2.dev0" });
    expect(check(report, "version").warning).toContain("MLFLOW_VERSION=3.15.1");
  });
});

describe("smoke failures say what to fix", () => {
  it("no auth in front of MLflow: the auth checks fail", async () => {
    const open = await startMlflowDouble();
    try {
      const report = await runSmoke(settings({ url: open.url }));
      expect(failed(report)).toEqual(["auth: no credentials", "auth: wrong password"]);
      expect(check(report, "auth: no credentials").detail).toContain("answered 200 without credentials");
      expect(check(report, "auth: no credentials").advice).toContain("basic auth");
      assertCleanedUp(open, report);
    } finally {
      await open.stop();
    }
  });

  it("wrong password: 401 with credentials → check the password and the hash", async () => {
    const report = await runSmoke(settings({ password: "wrong" }));
    expect(report.ok).toBe(false);
    expect(check(report, "version")).toMatchObject({ status: "fail" });
    expect(check(report, "version").detail).toContain("answered 401");
    expect(check(report, "version").advice).toContain("secrets/proxy_password.alice");
    expect(check(report, "create experiment").advice).toContain("proxy_users");
    expect(check(report, "create run")).toMatchObject({ status: "skip", detail: 'needs "create experiment", which did not pass' });
    expect(check(report, "cleanup")).toMatchObject({ status: "skip", detail: "nothing was created" });
  });

  it("403 Invalid Host header → set DOMAIN", async () => {
    double.misbehave({ allowedHosts: ["mlflow.example.com"] });
    const report = await runSmoke(settings());
    expect(check(report, "health").status).toBe("pass"); // /health is exempt from MLflow's host check, as recorded
    const version = check(report, "version");
    expect(version.status).toBe("fail");
    expect(version.detail).toContain("Invalid Host header - possible DNS rebinding attack detected");
    expect(version.advice).toContain(`MLflow refused the Host header '127.0.0.1:${double.port}'`);
    expect(version.advice).toContain("set DOMAIN=127.0.0.1 in .env");
  });

  it("413 on artifact uploads → raise PROXY_MAX_BODY_SIZE; cleanup still runs", async () => {
    double.misbehave({ fail: { status: 413, match: /^PUT \/api\/2\.0\/mlflow-artifacts\//, body: "Request Entity Too Large" } });
    const report = await runSmoke(settings());
    expect(failed(report)).toEqual(["artifact upload"]);
    expect(check(report, "artifact upload").detail).toContain("answered 413");
    expect(check(report, "artifact upload").advice).toContain("raise PROXY_MAX_BODY_SIZE in .env");
    expect(check(report, "register model version").status).toBe("skip");
    double.misbehave({});
    assertCleanedUp(double, report);
  });

  it("502 from the proxy → MLflow down", async () => {
    double.misbehave({ fail: { status: 502, match: /^(?!GET \/health)/, body: "Bad Gateway" } });
    const report = await runSmoke(settings());
    expect(check(report, "version").status).toBe("fail");
    expect(check(report, "version").advice).toContain("could not reach MLflow");
    expect(check(report, "auth: no credentials").advice).toContain("could not reach MLflow");
  });

  it("504 from the proxy → MLflow too slow for the proxy", async () => {
    double.misbehave({ fail: { status: 504, match: /^POST \/api\/2\.0\/mlflow\/runs\/log-batch/, body: "Gateway Timeout" } });
    const report = await runSmoke(settings());
    expect(failed(report)).toEqual(["log-batch"]);
    expect(check(report, "log-batch").advice).toContain("did not answer the proxy in time (504)");
    expect(check(report, "read run back").status).toBe("skip");
    double.misbehave({});
    assertCleanedUp(double, report);
  });

  it("a slow MLflow → a timeout that names the limit", async () => {
    double.misbehave({ delay: { ms: 1500, match: /\/experiments\/create/ } });
    const report = await runSmoke(settings({ timeoutMs: 300 }));
    expect(failed(report)).toEqual(["create experiment"]);
    expect(check(report, "create experiment").detail).toContain("no answer within 300 ms");
    expect(check(report, "create experiment").advice).toContain("--timeout");
    // The create may still complete: cleanup looks for it and says so when it is not there (yet).
    expect(check(report, "cleanup").status).toBe("skip");
    expect(check(report, "cleanup").detail).toContain(`timed-out create of ${report.created.experimentName}`);
  });

  it("a large upload that MLflow answers only after copying it on: the wait grows with the size (1 GiB fits the default)", async () => {
    // The 1 s delay stands for MLflow's copy to the bucket; 8 MiB buys 2 s on top of the 300 ms timeout.
    double.misbehave({ delay: { ms: 1000, match: /^PUT .*\/smoke\/large\.bin/ } });
    const report = await runSmoke(settings({ timeoutMs: 300, largeBytes: 8 * 1024 * 1024 }));
    expect(check(report, "large artifact")).toMatchObject({ status: "pass" });
    expect(report.ok).toBe(true);
    // Seen with MLflow and a 1 GiB upload: 30 s failed, 180 s passed.
    expect(uploadTimeoutMs(1024 ** 3, DEFAULT_TIMEOUT_MS)).toBeGreaterThanOrEqual(180_000);
  });

  it("Ctrl-C: cuts the request in flight, skips the rest, still cleans up", async () => {
    double.misbehave({ delay: { ms: 3000, match: /\/runs\/log-batch/ } });
    const interrupt = new AbortController();
    const report = await runSmoke(settings(), {
      signal: interrupt.signal,
      onResult: (result) => void (result.name === "create run" && setTimeout(() => interrupt.abort(), 100)),
    });
    // Cut, not answered: the delayed answer would have passed.
    expect(check(report, "log-batch")).toMatchObject({ status: "fail", detail: "POST /api/2.0/mlflow/runs/log-batch: interrupted", advice: expect.stringContaining("interrupted") });
    expect(check(report, "read run back")).toMatchObject({ status: "skip", detail: "interrupted" });
    expect(check(report, "set alias")).toMatchObject({ status: "skip", detail: "interrupted" });
    double.misbehave({});
    assertCleanedUp(double, report);
  });

  it("a download whose bytes differ → the sha256 check fails", async () => {
    double.misbehave({ corruptDownloads: true });
    const report = await runSmoke(settings({ largeBytes: 2 * 1024 * 1024 }));
    expect(failed(report)).toEqual(["artifact download", "large artifact"]);
    expect(check(report, "artifact download").detail).toMatch(/sha256 [0-9a-f]{12}…, uploaded 65536 bytes/);
    expect(check(report, "artifact download").advice).toContain("changes artifacts");
    double.misbehave({});
    assertCleanedUp(double, report);
  });

  it("nothing listening → start the stack; everything else is skipped", async () => {
    const port = await freePort();
    const report = await runSmoke(settings({ url: `http://127.0.0.1:${port}` }));
    expect(check(report, "health")).toMatchObject({ status: "fail" });
    expect(check(report, "health").detail).toContain("ECONNREFUSED");
    expect(check(report, "health").advice).toContain("docker compose up -d --wait");
    expect(report.results.slice(1).every((r) => r.status === "skip")).toBe(true);
  });

  it("artifacts not proxied (artifact_uri s3://…) → start MLflow with --serve-artifacts", async () => {
    // A server without --serve-artifacts hands out the storage URI itself.
    const original = double.state.experiments;
    const report = await runSmoke(settings(), {
      onResult: (result) => {
        if (result.name === "create experiment") for (const e of original.values()) e.artifact_location = e.artifact_location.replace(/^mlflow-artifacts:/, "s3://mlflow");
      },
    });
    expect(failed(report)).toEqual(["create run"]);
    expect(check(report, "create run").detail).toContain("not mlflow-artifacts:/");
    expect(check(report, "create run").advice).toContain("--serve-artifacts");
  });
});

describe("smoke: the artifact in the bucket (HeadObject against a real local S3 server)", () => {
  let s3: S3Server;
  let forwarding: MlflowDouble;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ["mlflow", "elsewhere"] });
    // Like MLflow with --artifacts-destination s3://mlflow/: every upload goes on into the bucket.
    forwarding = await startMlflowDouble({ basicAuth: LOGIN, s3: { ...s3, bucket: "mlflow" } });
  });
  afterAll(async () => {
    await forwarding?.stop();
    await s3?.stop();
  });
  const target = (bucket: string) => ({ endpoint: s3.endpoint, region: s3.region, bucket, prefix: "", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });

  it("finds the uploaded object with the uploaded size; cleanup removes it from the bucket too", async () => {
    let key = "";
    const report = await runSmoke(settings({ url: forwarding.url, s3: target("mlflow") }), {
      onResult: (result) => {
        if (result.name === "artifact in bucket") key = /s3:\/\/mlflow\/(\S+)/.exec(result.detail ?? "")?.[1] ?? "";
      },
    });
    expect(failed(report)).toEqual([]);
    expect(check(report, "artifact in bucket").detail).toMatch(/^s3:\/\/mlflow\/\d+\/[0-9a-f]{32}\/artifacts\/model\/model\.bin at http:\/\/127\.0\.0\.1:\d+ \(65536 bytes\)$/);
    assertCleanedUp(forwarding, report);
    const client = new S3Client(s3ClientConfig(s3));
    try {
      await expect(client.send(new HeadObjectCommand({ Bucket: "mlflow", Key: key }))).rejects.toMatchObject({ name: "NotFound" });
    } finally {
      client.destroy();
    }
  });

  it("artifacts that never reach the bucket → check --artifacts-destination", async () => {
    const report = await runSmoke(settings({ url: forwarding.url, s3: target("elsewhere") }));
    expect(failed(report)).toEqual(["artifact in bucket"]);
    expect(check(report, "artifact in bucket").detail).toMatch(/^s3:\/\/elsewhere\/.*model\.bin at .*: not found$/);
    expect(check(report, "artifact in bucket").advice).toContain("--artifacts-destination s3://elsewhere");
    assertCleanedUp(forwarding, report);
  });

  it("wrong S3 credentials for the check → says which settings hold them", async () => {
    const report = await runSmoke(settings({ url: forwarding.url, s3: { ...target("mlflow"), accessKeyId: "nobody", secretAccessKey: "wrong" } }));
    expect(failed(report)).toEqual(["artifact in bucket"]);
    expect(check(report, "artifact in bucket").advice).toContain("secrets/minio_root_password");
  });
});
