// npm run bench:proxy end to end, in a quick configuration: it runs, measures all three targets, and answers usage
// errors with one line. (The figures themselves are for people; they are not asserted.)
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { REPO_ROOT } from "./support/proxies.ts";

const run = promisify(execFile);
const BENCH = join(REPO_ROOT, "scripts", "bench-proxy.ts");
const tsx = (args: string[]) => run(process.execPath, ["--import", "tsx", BENCH, ...args], { cwd: REPO_ROOT });
const available = Boolean(requireBinary("caddy", "caddy") && requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));

describe("bench:proxy", () => {
  it("answers an unknown option with one line and exit status 2", async () => {
    const failure = await tsx(["--bogus"]).catch((error) => error);
    expect(failure.code).toBe(2);
    expect(failure.stderr.trim()).toMatch(/^bench:proxy: Unknown option '--bogus' \(see: npm run bench:proxy -- --help\)$/);
    const bad = await tsx(["--costs", "99"]).catch((error) => error);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  });

  it.skipIf(!available)("measures direct, caddy and nginx in one run (--json)", async () => {
    const { stdout, stderr } = await tsx(["--duration", "0.6", "--concurrency", "4", "--upload-mib", "32", "--costs", "4", "--no-costly-bursts", "--burst-rounds", "1", "--burst-requests", "60", "--json"]);
    const result = JSON.parse(stdout);
    expect(result.throughput.map((r: any) => r.target)).toEqual(["direct", "caddy", "nginx"]);
    for (const row of result.throughput) {
      expect(row.unauthenticatedRps).toBeGreaterThan(0);
      expect(row.authenticatedRps).toBeGreaterThan(0);
      expect(row.errors).toBe(0);
    }
    expect(result.upload.map((r: any) => r.target)).toEqual(["direct", "caddy", "nginx"]);
    for (const row of result.upload.slice(1)) expect(row.spooledBytes).toBe(0);
    expect(result.caddyCost).toEqual([expect.objectContaining({ cost: 4 })]);
    expect(result.nginxSchemes[0]).toMatchObject({ scheme: "{SSHA} (sshaHash)" });
    expect(result.bursts.map((r: any) => [r.target, r.scenario, r.requests, r.parallel])).toEqual([
      ["caddy", "generated", 60, 20],
      ["caddy", "unknown-user", 60, 20],
      ["caddy", "garbage", 60, 20],
      ["nginx", "generated", 60, 20],
      ["nginx", "unknown-user", 60, 20],
      ["nginx", "garbage", 60, 20],
    ]);
    for (const row of result.bursts) {
      expect(row.proxyCpuSecondsWithValid).toBeGreaterThan(0); // read from /proc: a burst and the valid client cost some CPU
      expect(row.burstSamples).toBeGreaterThan(0);
      expect(row.unexpected).toBe(0);
      expect(row.loadAverage).toBeGreaterThanOrEqual(0);
      expect(row.proxyCpuSeconds).toBeGreaterThanOrEqual(0);
      expect(row.proxyCpuSecondsWithValid).toBeGreaterThanOrEqual(row.proxyCpuSeconds);
    }
    // Unknown user names no longer cost Caddy its cost-14 dummy hash (~0.5-1 CPU-s each: 60 would be a minute).
    const unknown = result.bursts.find((r: any) => r.target === "caddy" && r.scenario === "unknown-user");
    expect(unknown.proxyCpuSecondsWithValid).toBeLessThan(10);
    expect(result.machine.loadAverageAtEnd).toHaveLength(3);
    for (const row of result.nginxSchemes) expect(row.authenticatedRps, row.scheme).toBeGreaterThan(0);
    expect(result.goals.length).toBeGreaterThanOrEqual(12);
    for (const what of ["wrong passwords", "unknown user names", "garbage Authorization headers"]) {
      expect(result.goals.map((g: any) => g.description)).toContain(`caddy: 60 ${what} (20 in parallel) cost <= 0.6 CPU-seconds`);
    }
    expect(stderr).toMatch(/bench:proxy: done in \d+ s/);
  }, 180_000);
});
