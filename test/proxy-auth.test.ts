// Both proxies, run as real processes with our very config files, behave the same: basic auth everywhere but
// GET /health, no way around it with encoded or dot-segment paths, security headers, Host and X-Forwarded-*
// passed on, body limit enforced. The upstream records what reached it, so "did not reach MLflow" is checked, not assumed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import {
  basicAuth,
  caddyUsersFile,
  htpasswdFile,
  httpRequest,
  startCaddy,
  startNginx,
  type HttpResponse,
  type ProxyOptions,
  type RunningProxy,
  zeroStream,
} from "./support/proxies.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { cpuSeconds } from "../scripts/lib/bench-burst.ts";
import { caddyGuardFile } from "../scripts/lib/caddy-user-guard.ts";

const hasCaddy = Boolean(requireBinary("caddy", "caddy"));
const hasNginx = Boolean(requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));

const USER = "alice";
const PASSWORD = "T9vQ2xLm8RkP4wZc7YhN3bJd";
const OTHER_USER = "bob";
const OTHER_PASSWORD = "Hq5Zr1Vx9Lt3Mw7Kc2Pn6Bd8";
const users = { [USER]: PASSWORD, [OTHER_USER]: OTHER_PASSWORD };

interface Flavour {
  name: "caddy" | "nginx";
  available: boolean;
  start: (options: Omit<ProxyOptions, "usersFile">) => Promise<RunningProxy>;
}

const flavours: Flavour[] = [
  // USER as bootstrap guards a generated-password user (its first 3 characters required), OTHER_USER by name only.
  { name: "caddy", available: hasCaddy, start: (o) => startCaddy({ ...o, usersFile: caddyUsersFile(users), guardFile: caddyGuardFile(caddyUsersFile(users), new Map([[USER, PASSWORD.slice(0, 3)]])) }) },
  { name: "nginx", available: hasNginx, start: (o) => startNginx({ ...o, usersFile: htpasswdFile(users) }) },
];

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "SAMEORIGIN",
  "referrer-policy": "strict-origin-when-cross-origin",
};

function headerValues(response: HttpResponse, name: string): string[] {
  return response.rawHeaders.filter(([key]) => key === name).map(([, value]) => value);
}

function expectSecurityHeaders(response: HttpResponse) {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(headerValues(response, name), `${name} on a ${response.status}`).toEqual([value]);
  }
  // HSTS only over TLS; these proxies speak plain http here.
  expect(response.headers["strict-transport-security"]).toBeUndefined();
  // No version anywhere, and never the upstream's own Server header.
  for (const server of headerValues(response, "server")) {
    expect(server).not.toMatch(/\d/);
    expect(server).not.toMatch(/upstream/);
  }
}

describe.each(flavours)("$name proxy", ({ name, available, start }) => {
  let upstream: Upstream;
  let proxy: RunningProxy;

  beforeAll(async () => {
    if (!available) return;
    upstream = await startUpstream();
    proxy = await start({ upstream: upstream.hostPort });
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });
  afterEach(() => {
    if (upstream) upstream.requests.length = 0;
  });

  it.skipIf(!available)("asks for credentials on every path but /health and forwards nothing without them", async () => {
    for (const path of ["/", "/api/2.0/mlflow/experiments/search", "/ajax-api/2.0/mlflow/runs/get?run_id=1", "/static-files/index.html", "/health/", "/healthz", "/version"]) {
      const response = await httpRequest(proxy.url, path);
      expect(response.status, path).toBe(401);
      expect(response.headers["www-authenticate"], path).toMatch(/^Basic realm=/);
      expectSecurityHeaders(response);
    }
    expect(upstream.requests).toEqual([]);
  });

  it.skipIf(!available)("answers 401 to a wrong password, an unknown user and a malformed header", async () => {
    const wrong = [basicAuth(USER, "not-the-password"), basicAuth(USER, OTHER_PASSWORD), basicAuth("mallory", PASSWORD), basicAuth(USER, ""), "Basic !!!", "Bearer abc", `Basic ${Buffer.from(USER).toString("base64")}`];
    for (const authorization of wrong) {
      const response = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization } });
      expect(response.status, authorization).toBe(401);
      expectSecurityHeaders(response);
    }
    expect(upstream.requests).toEqual([]);
  });

  it.skipIf(!available)("answers every other shape of bad credentials exactly like a wrong password", async () => {
    const path = "/api/2.0/mlflow/experiments/search";
    // Status, headers (all but Date, in order) and body: nothing tells the guard's 401 from basicauth's.
    const shape = (response: HttpResponse) => ({
      status: response.status,
      headers: response.rawHeaders.filter(([key]) => key !== "date"),
      body: response.body,
    });
    const reference = shape(await httpRequest(proxy.url, path, { headers: { authorization: basicAuth(USER, "not-the-password") } }));
    expect(reference.status).toBe(401);
    expect(reference.headers).toContainEqual(["www-authenticate", name === "caddy" ? 'Basic realm="restricted"' : 'Basic realm="MLflow"']);
    const cases: Record<string, Record<string, string | string[]>> = {
      "no header": {},
      "empty header": { authorization: "" },
      "scheme only": { authorization: "Basic" },
      "unknown user": { authorization: basicAuth("mallory", PASSWORD) },
      "a known user's name plus a character": { authorization: basicAuth(`${USER}x`, PASSWORD) },
      "lower-case scheme, wrong password": { authorization: basicAuth(USER, "not-the-password").replace("Basic", "basic") },
      "lower-case scheme, unknown user": { authorization: basicAuth("mallory", PASSWORD).replace("Basic", "basic") },
      // Caddy: another start is the guard's 401, the right start with a wrong rest is basicauth's; both alike.
      "wrong password, right first 3 characters": { authorization: basicAuth(USER, `${PASSWORD.slice(0, 3)}not-the-rest`) },
      "wrong password, one character off at the start": { authorization: basicAuth(USER, `${PASSWORD[0] === "x" ? "y" : "x"}${PASSWORD.slice(1)}`) },
      "the right password plus a character": { authorization: basicAuth(USER, `${PASSWORD}x`) },
      "the other user's wrong password (name-only guard)": { authorization: basicAuth(OTHER_USER, "not-the-password") },
    };
    // nginx refuses a repeated Authorization header outright (400, "client sent duplicate header line").
    const twoHeaders: Record<string, string[]> = {
      "two headers, unknown user first": [basicAuth("mallory", PASSWORD), basicAuth(USER, "not-the-password")],
      "two headers, known user first": [basicAuth(USER, "not-the-password"), basicAuth("mallory", PASSWORD)],
    };
    for (const [label, headers] of Object.entries(cases)) {
      expect(shape(await httpRequest(proxy.url, path, { headers })), label).toEqual(reference);
    }
    for (const [label, authorization] of Object.entries(twoHeaders)) {
      const response = await httpRequest(proxy.url, path, { headers: { Authorization: authorization } });
      if (name === "caddy") expect(shape(response), label).toEqual(reference);
      else expect(response.status, label).toBe(400);
    }
    // The right password with a lower-case scheme is still a login (Go and nginx compare the scheme without case).
    const lower = await httpRequest(proxy.url, path, { headers: { authorization: basicAuth(USER, PASSWORD).replace("Basic", "basic") } });
    expect(lower.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });

  it.skipIf(!available || name !== "caddy")("answers unknown user names without a bcrypt (Caddy's dummy hash costs ~1 CPU-second each)", async () => {
    const before = cpuSeconds(proxy.pids());
    for (let i = 0; i < 5; i++) {
      const response = await httpRequest(proxy.url, "/", { headers: { authorization: basicAuth(`nobody${i}`, `${PASSWORD}${i}`) } });
      expect(response.status).toBe(401);
    }
    // Two Authorization headers cannot smuggle an unknown user past the guard (Go's BasicAuth reads the first).
    const smuggled = await httpRequest(proxy.url, "/", { headers: { Authorization: [basicAuth("nobody", "x"), basicAuth(USER, PASSWORD)] } });
    expect(smuggled.status).toBe(401);
    expect(cpuSeconds(proxy.pids()) - before).toBeLessThan(0.5);
  });

  it.skipIf(!available || name !== "caddy")("answers a generated-password user's wrong password with another start without a bcrypt, the right start through basicauth", async () => {
    // A separate Caddy whose hash costs 12 (~0.2 s of CPU per check), so a bcrypt shows in the CPU time.
    const costly = await startCaddy({
      upstream: upstream.hostPort,
      usersFile: caddyUsersFile({ [USER]: PASSWORD }, 12),
      guardFile: caddyGuardFile(caddyUsersFile({ [USER]: PASSWORD }, 4), new Map([[USER, PASSWORD.slice(0, 3)]])),
    });
    try {
      const ask = (password: string) => httpRequest(costly.url, "/", { headers: { authorization: basicAuth(USER, password) } });
      let before = cpuSeconds(costly.pids());
      for (let i = 0; i < 6; i++) expect((await ask(`w${i}${PASSWORD}`)).status).toBe(401);
      const guarded = cpuSeconds(costly.pids()) - before;
      before = cpuSeconds(costly.pids());
      for (let i = 0; i < 6; i++) expect((await ask(`${PASSWORD.slice(0, 3)}wrong${i}`)).status).toBe(401);
      const checked = cpuSeconds(costly.pids()) - before;
      expect(guarded).toBeLessThan(0.3);
      expect(checked).toBeGreaterThan(guarded + 0.3); // six bcrypt-12 checks
      expect((await ask(PASSWORD)).status).toBe(200);
    } finally {
      await costly.stop();
    }
  });

  it.skipIf(!available)("proxies a request with the right credentials, Host unchanged, X-Forwarded-* added", async () => {
    for (const [user, password] of Object.entries(users)) {
      const host = "mlflow.example.com:8443";
      const response = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search?max_results=5", {
        headers: { host, authorization: basicAuth(user, password), "x-forwarded-for": "203.0.113.9" },
      });
      expect(response.status).toBe(200);
      expectSecurityHeaders(response);
      const seen = upstream.requests.at(-1)!;
      expect(JSON.parse(response.body)).toMatchObject({ method: "GET", path: "/api/2.0/mlflow/experiments/search?max_results=5" });
      expect(seen.headers.host).toBe(host);
      expect(seen.headers["x-forwarded-host"]).toBe(host);
      expect(seen.headers["x-forwarded-proto"]).toBe("http");
      // The proxy is the edge: the address it saw, not one the client made up.
      expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
    }
    expect(upstream.requests).toHaveLength(2);
  });

  it.skipIf(!available)("serves GET and HEAD /health without credentials, and only that", async () => {
    const get = await httpRequest(proxy.url, "/health", { headers: { host: "localhost:8080" } });
    expect(get.status).toBe(200);
    expect(get.body).toBe("OK");
    expectSecurityHeaders(get);
    const head = await httpRequest(proxy.url, "/health", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(upstream.requests.map((r) => [r.method, r.path])).toEqual([
      ["GET", "/health"],
      ["HEAD", "/health"],
    ]);
    expect(upstream.requests[0].headers.host).toBe("localhost:8080");

    for (const method of ["POST", "PUT", "DELETE"]) {
      const response = await httpRequest(proxy.url, "/health", { method, body: "x" });
      expect(response.status, method).toBe(401);
    }
    expect(upstream.requests).toHaveLength(2);
  });

  it.skipIf(!available)("cannot be bypassed with encoded, dot-segment, double-slash or absolute-form paths", async () => {
    const mustBeDenied = [
      "/health/../api/2.0/mlflow/experiments/search",
      "/health/./../api/2.0/mlflow/experiments/search",
      "/health/%2e%2e/api/2.0/mlflow/experiments/search",
      "/health/%2E%2E/%2E%2E/api/2.0/mlflow/experiments/search",
      "/health%2F..%2Fapi/2.0/mlflow/experiments/search",
      "/health%2f%2e%2e%2fapi/2.0/mlflow/experiments/search",
      "/health/..%2Fapi/2.0/mlflow/experiments/search",
      "/health%00/../api/2.0/mlflow/experiments/search",
      "/health;/../api/2.0/mlflow/experiments/search",
      "/health%3F/../api/2.0/mlflow/experiments/search",
      "/health/",
      "/health/x",
      "//api/2.0/mlflow/experiments/search",
      "///api/2.0/mlflow/experiments/search",
      "/./api/2.0/mlflow/experiments/search",
      "/%2e/api/2.0/mlflow/experiments/search",
      "/%61pi/2.0/mlflow/experiments/search",
      "/api/2.0/mlflow/../mlflow/experiments/search",
      "http://localhost/api/2.0/mlflow/experiments/search",
      "http://localhost/health/../api/2.0/mlflow/experiments/search",
    ];
    for (const path of mustBeDenied) {
      const response = await httpRequest(proxy.url, path);
      // 401 normally; 400 when the proxy refuses the request line outright. Never proxied.
      expect([400, 401], `${name} ${path} → ${response.status}`).toContain(response.status);
    }
    // Spellings that may legitimately mean /health: allowed through, but then MLflow must receive exactly /health.
    const healthAliases = ["/%68ealth", "/%68%65%61%6c%74%68", "//health", "/./health", "/x/../health", "/HEALTH", "/health?x=1", "http://localhost/health"];
    for (const path of healthAliases) {
      const response = await httpRequest(proxy.url, path);
      expect([200, 400, 401, 404], `${name} ${path} → ${response.status}`).toContain(response.status);
    }
    // Caddy keeps a percent-encoded spelling of the very same path (Go keeps RawPath when it decodes to the new
    // path), so compare decoded: anything but "/health" (and its query) would be a bypass.
    for (const seen of upstream.requests) {
      const [pathname, query] = seen.path.split(/\?(.*)/s);
      expect(decodeURIComponent(pathname), `${name}: the upstream received ${seen.path} without credentials`).toBe("/health");
      expect([undefined, "x=1"]).toContain(query);
      expect(seen.method).toBe("GET");
    }
  });
});

// PROXY_MAX_BODY_SIZE in Caddy's units ("1MB" = 10^6 bytes). nginx gets the same value converted to bytes by
// nginx/docker-entrypoint.d/15-proxy-max-body-size.envsh, so both cut at the very same byte.
describe.each(flavours)("$name proxy with PROXY_MAX_BODY_SIZE=1MB", ({ name, available, start }) => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  const authorization = basicAuth(USER, PASSWORD);

  beforeAll(async () => {
    if (!available) return;
    upstream = await startUpstream();
    proxy = await start({ upstream: upstream.hostPort, maxBodySize: "1MB" });
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it.skipIf(!available)("accepts a body of exactly the limit", async () => {
    const response = await httpRequest(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/a.bin", { method: "PUT", headers: { authorization }, body: Buffer.alloc(1_000_000) });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body).bodyBytes).toBe(1_000_000);
  });

  it.skipIf(!available)("answers 413 to one byte more, and the upstream never gets the whole body", async () => {
    upstream.requests.length = 0;
    const response = await httpRequest(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/b.bin", { method: "PUT", headers: { authorization }, body: Buffer.alloc(1_000_001) });
    expect(response.status).toBe(413);
    expectSecurityHeaders(response);
    if (name === "nginx") {
      // nginx checks Content-Length before it contacts the upstream.
      expect(upstream.requests).toEqual([]);
    } else {
      // Caddy enforces the limit while the body streams: MLflow may see the start of a request that is then cut off.
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const seen of upstream.requests) expect(seen.bodyBytes).toBeLessThanOrEqual(1_000_000);
    }
  });

  it.skipIf(!available)("answers 413 to a chunked body over the limit", async () => {
    upstream.requests.length = 0;
    const response = await httpRequest(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/c.bin", { method: "PUT", headers: { authorization }, body: zeroStream(3_000_000, 64 * 1024) });
    expect(response.status).toBe(413);
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const seen of upstream.requests) expect(seen.bodyBytes).toBeLessThanOrEqual(1_000_000);
  });
});
