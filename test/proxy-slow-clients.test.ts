// Slow clients against both proxies, run as real processes with our very configs on loopback: a client that trickles
// its headers (one line every 2 s, never finishing) is disconnected within the 10 s header timeout, while an upload
// that trickles its BODY for longer than that still goes through (no body timeout cuts a slow multi-GB upload).
import { connect } from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, caddyUsersFile, htpasswdFile, httpRequest, startCaddy, startNginx, type RunningProxy } from "./support/proxies.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const available = Boolean(requireBinary("caddy", "caddy") && requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));
const HEADER_TIMEOUT_S = 10;
const CONNECTIONS = 50;
const users = { alice: "T9vQ2xLm8RkP4wZc7YhN3bJd" };

/**
 * Opens `count` connections that send a request line and then one header line every `intervalMs`, never the end of
 * the headers; resolves with the seconds after which each was closed by the server (Infinity if still open at `giveUpS`).
 */
function slowHeaderClients(port: number, count: number, intervalMs: number, giveUpS: number): Promise<number[]> {
  const started = performance.now();
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new Promise<number>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port });
        let line = 0;
        const timer = setInterval(() => socket.write(`X-Slow-${line++}: ${i}\r\n`), intervalMs);
        const giveUp = setTimeout(() => {
          socket.destroy();
          resolve(Infinity);
        }, giveUpS * 1000);
        socket.on("connect", () => socket.write(`GET /api/2.0/mlflow/experiments/search HTTP/1.1\r\nHost: localhost\r\n`));
        socket.on("data", () => {}); // a 408 is fine too; what counts is that the server closes
        socket.on("error", () => {});
        socket.on("close", () => {
          clearInterval(timer);
          clearTimeout(giveUp);
          resolve((performance.now() - started) / 1000);
        });
      }),
    ),
  );
}

/** A body of `chunks` x 64 KiB, one chunk every `intervalMs`. */
function tricklingBody(chunks: number, intervalMs: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent === chunks) return void this.push(null);
      setTimeout(() => {
        sent++;
        this.push(Buffer.alloc(64 * 1024));
      }, intervalMs);
    },
  });
}

describe.skipIf(!available)("slow clients", () => {
  let upstream: Upstream;
  let proxies: RunningProxy[];

  beforeAll(async () => {
    upstream = await startUpstream();
    proxies = await Promise.all([
      startCaddy({ upstream: upstream.hostPort, usersFile: caddyUsersFile(users) }),
      startNginx({ upstream: upstream.hostPort, usersFile: htpasswdFile(users) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all((proxies ?? []).map((proxy) => proxy.stop()));
    await upstream?.stop();
  });

  it(`closes ${CONNECTIONS} connections that trickle their headers within the ${HEADER_TIMEOUT_S} s header timeout, on both proxies`, async () => {
    const results = await Promise.all(proxies.map((proxy) => slowHeaderClients(proxy.port, CONNECTIONS, 2000, HEADER_TIMEOUT_S + 10)));
    for (const [i, closedAfter] of results.entries()) {
      const kind = proxies[i].kind;
      // Not before the timeout (the clients did send something every 2 s), and all of them by the timeout plus slack.
      expect(Math.min(...closedAfter), `${kind}: first close`).toBeGreaterThan(HEADER_TIMEOUT_S - 2);
      expect(Math.max(...closedAfter), `${kind}: last close`).toBeLessThan(HEADER_TIMEOUT_S + 5);
    }
    expect(upstream.requests).toEqual([]);
    // The proxies still serve normal clients afterwards.
    for (const proxy of proxies) expect((await httpRequest(proxy.url, "/health")).status).toBe(200);
  }, 60_000);

  it(`lets an upload whose body trickles for longer than ${HEADER_TIMEOUT_S} s through, on both proxies`, async () => {
    const chunks = 14;
    const responses = await Promise.all(
      proxies.map((proxy) =>
        httpRequest(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/slow.bin", {
          method: "PUT",
          headers: { authorization: basicAuth("alice", users.alice), "content-length": String(chunks * 64 * 1024) },
          body: tricklingBody(chunks, 1000),
        }),
      ),
    );
    for (const [i, response] of responses.entries()) {
      expect(response.status, proxies[i].kind).toBe(200);
      expect(JSON.parse(response.body).bodyBytes, proxies[i].kind).toBe(chunks * 64 * 1024);
    }
  }, 60_000);
});
