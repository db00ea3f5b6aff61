// Parity: for every request shape the proxy tests use (and a few more), Caddy and nginx, run as real processes with
// our very configs, answer the same status, with and without valid credentials.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, caddyUsersFile, htpasswdFile, httpRequest, startCaddy, startNginx, type RunningProxy } from "./support/proxies.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { caddyGuardFile } from "../scripts/lib/caddy-user-guard.ts";

const available = Boolean(requireBinary("caddy", "caddy") && requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));
const users = { alice: "T9vQ2xLm8RkP4wZc7YhN3bJd" };
const authorization = basicAuth("alice", users.alice);

const PATHS = [
  "/health",
  "/HEALTH",
  "/Health",
  "/health?x=1",
  "/health/",
  "/healthz",
  "/health/x",
  "/%68ealth",
  "/%68%65%61%6c%74%68",
  "//health",
  "/./health",
  "/x/../health",
  "/health/../api/2.0/mlflow/experiments/search",
  "/health/%2e%2e/api/2.0/mlflow/experiments/search",
  "/health%2F..%2Fapi/2.0/mlflow/experiments/search",
  "/health/..%2Fapi/2.0/mlflow/experiments/search",
  "/health%00/../api/2.0/mlflow/experiments/search",
  "/health;/../api/2.0/mlflow/experiments/search",
  "/health%3F/../api/2.0/mlflow/experiments/search",
  "//api/2.0/mlflow/experiments/search",
  "/./api/2.0/mlflow/experiments/search",
  "/%61pi/2.0/mlflow/experiments/search",
  "/api/2.0/mlflow/../mlflow/experiments/search",
  "/",
  "/version",
  "/static-files/index.html",
  "/api/2.0/mlflow/experiments/search",
  "http://localhost/api/2.0/mlflow/experiments/search",
  "http://localhost/health",
];
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

/** A raw request line (for targets node's http client will not send, like `OPTIONS *`): the status code answered. */
function rawStatus(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => socket.write(head));
    let data = "";
    socket.setTimeout(5000, () => socket.destroy(new Error("no answer")));
    socket.on("data", (chunk) => {
      data += chunk;
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (match) {
        resolve(Number(match[1]));
        socket.destroy();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(0));
  });
}

describe.skipIf(!available)("caddy and nginx answer alike", () => {
  let upstream: Upstream;
  let caddy: RunningProxy;
  let nginx: RunningProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    [caddy, nginx] = await Promise.all([
      // alice as a generated-password user: the guard also requires her password's first 3 characters.
      startCaddy({ upstream: upstream.hostPort, usersFile: caddyUsersFile(users), guardFile: caddyGuardFile(caddyUsersFile(users), new Map([["alice", users.alice.slice(0, 3)]])) }),
      startNginx({ upstream: upstream.hostPort, usersFile: htpasswdFile(users) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([caddy?.stop(), nginx?.stop()]);
    await upstream?.stop();
  });

  const statuses = async (proxy: RunningProxy, withCredentials: boolean) => {
    const out: Record<string, number> = {};
    for (const path of PATHS) {
      for (const method of METHODS) {
        const headers = withCredentials ? { authorization } : {};
        const response = await httpRequest(proxy.url, path, { method, headers, body: method === "POST" || method === "PUT" ? "x" : undefined });
        out[`${method} ${path}`] = response.status;
      }
    }
    const credentials = withCredentials ? `Authorization: ${authorization}\r\n` : "";
    out["OPTIONS *"] = await rawStatus(proxy.port, `OPTIONS * HTTP/1.1\r\nHost: localhost\r\n${credentials}Connection: close\r\n\r\n`);
    out["GET without Host (HTTP/1.1)"] = await rawStatus(proxy.port, `GET /health HTTP/1.1\r\n${credentials}Connection: close\r\n\r\n`);
    out["GET /health HTTP/1.0"] = await rawStatus(proxy.port, `GET /health HTTP/1.0\r\n\r\n`);
    if (!withCredentials) return out;
    // Shapes of the Authorization header (Caddy's user guard answers some of them before basicauth).
    const api = "/api/2.0/mlflow/experiments/search";
    const shapes: Record<string, string> = {
      "unknown user": basicAuth("mallory", users.alice),
      "wrong password": basicAuth("alice", "wrong"),
      "wrong password, right first 3 characters": basicAuth("alice", `${users.alice.slice(0, 3)}wrong`),
      "right password plus a character": basicAuth("alice", `${users.alice}x`),
      "lower-case scheme": authorization.replace("Basic", "basic"),
      "upper-case scheme": authorization.replace("Basic", "BASIC"),
      "empty header": "",
      "scheme only": "Basic",
      "other scheme": `Bearer ${authorization.slice(6)}`,
      "not base64": "Basic !!!",
      "no colon": `Basic ${Buffer.from("alice").toString("base64")}`,
    };
    for (const [label, value] of Object.entries(shapes)) {
      out[`Authorization: ${label}`] = (await httpRequest(proxy.url, api, { headers: { authorization: value } })).status;
    }
    return out;
  };

  it.each([false, true])("for every method and path shape (credentials: %s)", async (withCredentials) => {
    upstream.requests.length = 0;
    const [fromCaddy, fromNginx] = [await statuses(caddy, withCredentials), await statuses(nginx, withCredentials)];
    // The one known difference: Go's net/http answers `OPTIONS *` itself (an empty 200, before any Caddy handler) in
    // caddy builds that keep its general OPTIONS handler, such as Debian's 2.6 (Go 1.19). Where the request reaches
    // the Caddyfile, it answers 400 like nginx. Either way nothing reaches MLflow (checked below).
    const goAnswersOptionsStar = fromCaddy["OPTIONS *"] === 200;
    const differences = Object.keys(fromCaddy)
      .filter((key) => !(key === "OPTIONS *" && goAnswersOptionsStar))
      .filter((key) => fromCaddy[key] !== fromNginx[key])
      .map((key) => `${key}: caddy ${fromCaddy[key]}, nginx ${fromNginx[key]}`);
    expect(differences).toEqual([]);
    expect(fromNginx["OPTIONS *"]).toBe(400);
    expect(fromCaddy["GET /HEALTH"]).toBe(withCredentials ? 200 : 401); // case matters, as in MLflow
    if (withCredentials) expect(fromCaddy["Authorization: lower-case scheme"]).toBe(200);
    expect(upstream.requests.filter((r) => r.path === "*" || r.path.includes("%00"))).toEqual([]);
    if (!withCredentials) {
      // Without credentials only GET/HEAD (of /health, spelled in ways both proxies resolve to it) get anything but 400/401.
      const passed = Object.entries(fromCaddy).filter(([key, status]) => status !== 401 && status !== 400 && !(key === "OPTIONS *" && goAnswersOptionsStar));
      expect(passed.filter(([key]) => !/^(GET|HEAD) /.test(key))).toEqual([]);
      expect(upstream.requests.map((r) => r.path).filter((path) => decodeURIComponent(path.split("?")[0]) !== "/health")).toEqual([]);
    }
  }, 120_000);
});
