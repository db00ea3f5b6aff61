// npm run smoke through the stack's real proxies (Debian's caddy and nginx running OUR caddy/Caddyfile and
// nginx/templates) in front of the MLflow double, which forwards artifacts into a real local S3 server.
// Each failure the issue lists comes from the real proxy where it can (401, 413 body limit, 502 MLflow down) and
// from the double otherwise (403 Invalid Host header, slow answers, corrupted downloads).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runSmoke, type CheckResult, type SmokeReport, type SmokeSettings } from "../scripts/lib/smoke/checks.ts";
import { formatResult, formatSummary } from "../scripts/lib/smoke/report.ts";
import { requireBinary } from "./support/binaries.ts";
import { startMlflowDouble, type MlflowDouble } from "./support/mlflow-double.ts";
import { freePort } from "./support/ports.ts";
import { caddyUsersFile, htpasswdFile, startCaddy, startNginx, type ProxyOptions, type RunningProxy } from "./support/proxies.ts";
import { startS3Server, type S3Server } from "./support/s3.ts";

const USER = "mlflow";
const PASSWORD = "a-long-proxy-password-for-the-smoke";

const caddy = requireBinary("caddy", "caddy");
const nginx = requireBinary("nginx", "nginx-light");
const envsubst = nginx ? requireBinary("envsubst", "gettext-base") : undefined;

const proxies = [
  { kind: "caddy", available: Boolean(caddy), start: (o: ProxyOptions) => startCaddy(o), users: () => caddyUsersFile({ [USER]: PASSWORD }) },
  { kind: "nginx", available: Boolean(nginx && envsubst), start: (o: ProxyOptions) => startNginx(o), users: () => htpasswdFile({ [USER]: PASSWORD }) },
];

function check(report: SmokeReport, name: string): CheckResult {
  const found = report.results.find((r) => r.name === name);
  if (!found) throw new Error(`no check named ${name}`);
  return found;
}

const failed = (report: SmokeReport) => report.results.filter((r) => r.status === "fail").map((r) => r.name);
const explainReport = (report: SmokeReport) => report.results.map((r) => formatResult(r)).join("\n");

for (const proxy of proxies) {
  describe.skipIf(!proxy.available)(`smoke through ${proxy.kind} (our config)`, () => {
    let s3: S3Server;
    let double: MlflowDouble;
    let front: RunningProxy;
    const started: RunningProxy[] = [];
    const start = async (options: Partial<ProxyOptions> = {}) => {
      const running = await proxy.start({ upstream: double.hostPort, usersFile: proxy.users(), ...options });
      started.push(running);
      return running;
    };
    const settings = (overrides: Partial<SmokeSettings> = {}): SmokeSettings => ({
      url: front.url,
      username: USER,
      password: PASSWORD,
      timeoutMs: 10_000,
      keep: false,
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: "mlflow", prefix: "", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      ...overrides,
    });
    const assertCleanedUp = (report: SmokeReport) => {
      expect(check(report, "cleanup").status, explainReport(report)).toBe("pass");
      expect(double.leftovers(report.created)).toEqual([]);
    };

    beforeAll(async () => {
      s3 = await startS3Server({ buckets: ["mlflow"] });
      double = await startMlflowDouble({ s3: { ...s3, bucket: "mlflow" } });
      front = await start();
    });
    afterEach(() => double.misbehave({}));
    afterAll(async () => {
      for (const running of started) await running.stop();
      await double?.stop();
      await s3?.stop();
    });

    it("passes every check, a streamed large artifact and the bucket check included, and cleans up", async () => {
      const lines: string[] = [];
      const report = await runSmoke(settings({ largeBytes: 16 * 1024 * 1024 }), { onResult: (r) => lines.push(formatResult(r)) });
      lines.push(formatSummary(report));
      console.log(`smoke through ${proxy.kind}:\n${lines.join("\n")}`);
      expect(failed(report), explainReport(report)).toEqual([]);
      expect(report.counts).toEqual({ pass: 19, fail: 0, skip: 0 });
      // The proxy passed the client's Host through unchanged and said who the client was.
      const api = double.calls.filter((c) => c.path.startsWith("/api/"));
      expect(api.length).toBeGreaterThan(10);
      expect(new Set(api.map((c) => c.host))).toEqual(new Set([`127.0.0.1:${front.port}`]));
      expect(api.every((c) => c.forwardedFor === "127.0.0.1")).toBe(true);
      // Unauthenticated calls never reached MLflow: the proxy answered them.
      expect(double.calls.filter((c) => !c.authorization && c.path !== "/health")).toEqual([]);
      expect(double.calls.some((c) => c.method === "PUT" && c.bodyBytes === 16 * 1024 * 1024)).toBe(true);
      assertCleanedUp(report);
    });

    it("wrong password: the proxy answers 401 → check the password against the hash", async () => {
      const report = await runSmoke(settings({ password: "not-the-password" }));
      expect(check(report, "version").status).toBe("fail");
      expect(check(report, "version").detail).toContain("answered 401");
      expect(check(report, "version").advice).toContain(`secrets/proxy_password.${USER}`);
      expect(check(report, "cleanup").detail).toBe("nothing was created");
    });

    it("403 Invalid Host header from MLflow, through the proxy → set DOMAIN", async () => {
      double.misbehave({ allowedHosts: ["mlflow.example.com"] });
      const report = await runSmoke(settings());
      expect(check(report, "health").status).toBe("pass");
      expect(check(report, "version").status).toBe("fail");
      expect(check(report, "version").detail).toContain("Invalid Host header - possible DNS rebinding attack detected");
      expect(check(report, "version").advice).toContain("set DOMAIN=127.0.0.1 in .env");
      expect(check(report, "create run").status).toBe("skip");
    });

    it("the proxy's body limit (PROXY_MAX_BODY_SIZE=1MB) answers 413 → raise it; cleanup still runs", async () => {
      const limited = await start({ maxBodySize: "1MB" });
      const report = await runSmoke(settings({ url: limited.url, largeBytes: 4 * 1024 * 1024 }));
      expect(failed(report), explainReport(report)).toEqual(["large artifact"]);
      expect(check(report, "large artifact").detail).toContain("answered 413");
      expect(check(report, "large artifact").advice).toContain("raise PROXY_MAX_BODY_SIZE in .env");
      assertCleanedUp(report);
    });

    it("MLflow down behind the proxy: 502 → start MLflow", async () => {
      const deadEnd = await start({ upstream: `127.0.0.1:${await freePort()}` });
      const report = await runSmoke(settings({ url: deadEnd.url }));
      expect(check(report, "health").status).toBe("fail");
      expect(check(report, "health").detail).toContain("expected 200, got 502");
      expect(check(report, "health").advice).toContain("could not reach MLflow");
      expect(check(report, "version").advice).toContain("could not reach MLflow");
      expect(report.ok).toBe(false);
    });

    it("a slow MLflow: the client's timeout names the limit", async () => {
      double.misbehave({ delay: { ms: 1500, match: /\/registered-models\/create/ } });
      const report = await runSmoke(settings({ timeoutMs: 400 }));
      expect(failed(report)).toEqual(["register model version"]);
      expect(check(report, "register model version").detail).toContain("no answer within 400 ms");
      expect(check(report, "register model version").advice).toContain("--timeout");
    });

    it("a download whose bytes differ → sha256 mismatch", async () => {
      double.misbehave({ corruptDownloads: true });
      const report = await runSmoke(settings());
      expect(failed(report)).toEqual(["artifact download"]);
      expect(check(report, "artifact download").advice).toContain("changes artifacts");
      double.misbehave({});
      assertCleanedUp(report);
    });
  });
}
