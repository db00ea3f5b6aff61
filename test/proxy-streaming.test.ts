// Large artifacts pass through both proxies as streams: a 1 GiB upload arrives whole at the upstream while the
// proxy's memory stays flat and nothing is spooled to disk (nginx's client_body_temp stays empty), and a large
// download does the same the other way. Bodies are generated as streams, never held in memory.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, caddyUsersFile, htpasswdFile, measureTransfer, rssBytes, startCaddy, startNginx, type RunningProxy } from "./support/proxies.ts";
import { spawnUpstream } from "./support/upstream.ts";

const hasCaddy = Boolean(requireBinary("caddy", "caddy"));
const hasNginx = Boolean(requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
// A proxy that buffered the body in memory would grow by about the body size; 128 MiB leaves room for allocator noise.
const MAX_RSS_GROWTH = 128 * MiB;
const users = { alice: "Wd4Kp9Zx2Qm7Lr5Tc8Vb3Nh6" };
const authorization = basicAuth("alice", users.alice);

const flavours = [
  { name: "caddy", available: hasCaddy, start: (upstream: string) => startCaddy({ upstream, usersFile: caddyUsersFile(users) }) },
  { name: "nginx", available: hasNginx, start: (upstream: string) => startNginx({ upstream, usersFile: htpasswdFile(users) }) },
];

describe.each(flavours)("$name proxy streaming", ({ name, available, start }) => {
  // In its own process, so the upstream and this test's client do not share one event loop.
  let upstream: Awaited<ReturnType<typeof spawnUpstream>>;
  let proxy: RunningProxy;

  beforeAll(async () => {
    if (!available) return;
    upstream = await spawnUpstream();
    proxy = await start(upstream.hostPort);
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it.skipIf(!available)("passes a 1 GiB upload through without buffering it in memory or on disk", async () => {
    // Warm up (and authenticate once, so Caddy's credential cache is in place like in real use).
    await measureTransfer(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/warmup.bin", { bytes: MiB, headers: { authorization } });
    const baseline = rssBytes(proxy.pids());
    const stats = await measureTransfer(proxy.url, "/api/2.0/mlflow-artifacts/artifacts/model.bin", { bytes: GiB, headers: { authorization }, proxy });

    expect(stats.status).toBe(200);
    // The upstream's own count of the body bytes it received.
    expect(JSON.parse(stats.body)).toMatchObject({ method: "POST", path: "/api/2.0/mlflow-artifacts/artifacts/model.bin", bodyBytes: GiB });
    expect(stats.peakRssBytes - baseline, `${name} grew from ${baseline} to ${stats.peakRssBytes} bytes`).toBeLessThan(MAX_RSS_GROWTH);
    expect(stats.peakSpoolBytes, `${name} spooled the body to ${proxy.spoolDirs.join(", ")}`).toBe(0);
    if (name === "nginx") expect(proxy.bodyTempDir).toBeDefined();
    console.log(`${name}: 1 GiB upload in ${stats.seconds.toFixed(1)} s, proxy RSS ${(baseline / MiB).toFixed(0)} → peak ${(stats.peakRssBytes / MiB).toFixed(0)} MiB, spooled ${stats.peakSpoolBytes} bytes`);
  });

  it.skipIf(!available)("streams a 512 MiB download without holding it", async () => {
    const baseline = rssBytes(proxy.pids());
    const stats = await measureTransfer(proxy.url, `/stream?bytes=${512 * MiB}`, { headers: { authorization }, proxy, download: true });
    expect(stats.status).toBe(200);
    expect(stats.bytesReceived).toBe(512 * MiB);
    expect(stats.peakRssBytes - baseline).toBeLessThan(MAX_RSS_GROWTH);
    // nginx would spool a buffered response to proxy_temp.
    expect(stats.peakSpoolBytes).toBe(0);
  });
});
