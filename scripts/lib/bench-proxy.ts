// The proxy benchmark: our very Caddyfile and nginx template run as local processes in front of a stand-in upstream,
// measured in one run: small-request throughput with and without authentication, a large streamed upload, and what
// Caddy's bcrypt cost means for a first login and a wrong password. Returns figures; printing is the CLI's job.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import {
  basicAuth,
  caddyUsersFile,
  htpasswdFile,
  httpRequest,
  measureTransfer,
  rssBytes,
  startCaddy,
  startNginx,
  type RunningProxy,
} from "../../test/support/proxies.ts";
import { spawnUpstream } from "../../test/support/upstream.ts";
import { findBinary } from "../../test/support/binaries.ts";
import { UserError } from "./cli.ts";
import { bcryptCostFor, caddyHash, proxyHashes, sshaHash } from "./password-hashes.ts";
import { GENERATED_GUESSES_LOG10, MIN_GUESSES_LOG10 } from "./passwords.ts";
import { wrongPasswordBurst, type AttackKind, type BurstResult } from "./bench-burst.ts";
import { caddyGuardFile, guardPasswordPrefixes } from "./caddy-user-guard.ts";
import bcrypt from "bcryptjs";

/** The bcrypt cost bootstrap gives a generated password (240 bits). */
const GENERATED_COST = bcryptCostFor(GENERATED_GUESSES_LOG10);
/** The bcrypt cost of the weakest password bootstrap accepts (10^MIN_GUESSES_LOG10 guesses). */
const WEAKEST_CHOSEN_COST = bcryptCostFor(MIN_GUESSES_LOG10);
const BURST_REQUESTS = 200;
const BURST_PARALLEL = 20;
const BURST_CPU_LIMIT_SECONDS = 2;
const BURST_P99_RATIO_LIMIT = 3;

export interface BenchOptions {
  /** Seconds each throughput measurement runs (after a short warm-up). */
  durationSeconds: number;
  /** Concurrent keep-alive connections of the load loop. */
  concurrency: number;
  /** Size of the streamed upload, bytes. */
  uploadBytes: number;
  /** bcrypt costs to time through Caddy. */
  costs: number[];
  /** Also compare the password hash schemes nginx can verify. */
  schemes: boolean;
  /** Also time the expensive bursts (wrong passwords of a chosen-password user, unknown user names). */
  costlyBursts: boolean;
  /** Bursts of 200 in a row per proxy for the cheap scenarios (the p99s pool their samples). */
  burstRounds: number;
  /** Requests per burst (the targets are for 200; the CPU limit scales with it). */
  burstRequests: number;
  progress: (line: string) => void;
}

export type Target = "direct" | "caddy" | "nginx";

export interface ThroughputRow {
  target: Target;
  unauthenticatedRps: number;
  authenticatedRps: number;
  ratio: number;
  /** Requests that did not answer 200 (should be 0). */
  errors: number;
}

export interface UploadRow {
  target: Target;
  seconds: number;
  megabytesPerSecond: number;
  ratioToDirect: number;
  /** Proxy resident memory before the upload and at its peak during it (undefined for direct). */
  rssBeforeBytes?: number;
  peakRssBytes?: number;
  /** Most request/response bytes the proxy held on disk at once. */
  spooledBytes?: number;
}

export interface SchemeRow {
  scheme: string;
  authenticatedRps: number;
  /** Relative to unauthenticated GET /health through the same nginx, measured alongside. */
  ratio: number;
}

export interface CostRow {
  cost: number;
  firstLoginMs: number;
  wrongPasswordMs: number;
  cachedLoginMs: number;
}

export type BurstScenario = "generated" | "unknown-user" | "garbage" | "chosen" | "generated-prefix";

export interface BurstRow extends BurstResult {
  target: "caddy" | "nginx";
  scenario: BurstScenario;
}

export interface Goal {
  description: string;
  met: boolean;
  actual: string;
}

export interface BenchResult {
  machine: { cpus: number; loadAverage: number[]; loadAverageAtEnd?: number[]; caddy: string; nginx: string; node: string };
  options: Omit<BenchOptions, "progress">;
  throughput: ThroughputRow[];
  upload: UploadRow[];
  caddyCost: CostRow[];
  nginxSchemes: SchemeRow[];
  bursts: BurstRow[];
  goals: Goal[];
}

const MiB = 1024 * 1024;
// Memory growth above this during an upload means the proxy is holding the body.
const FLAT_MEMORY_BYTES = 128 * MiB;

function version(binary: string, args: string[]): string {
  // nginx -v prints to stderr.
  const result = spawnSync(binary, args, { encoding: "utf8" });
  return `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n")[0] || "unknown";
}

/** Sends requests on `concurrency` keep-alive connections for `durationMs` (after a warm-up); requests per second. */
async function loadLoop(baseUrl: string, path: string, headers: Record<string, string>, concurrency: number, durationMs: number) {
  const { hostname, port } = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const once = () =>
    new Promise<boolean>((resolve) => {
      const req = request({ host: hostname, port, path, headers, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
        res.on("error", () => resolve(false));
      });
      req.on("error", () => resolve(false));
      req.end();
    });
  const runFor = async (ms: number) => {
    const end = performance.now() + ms;
    let ok = 0;
    let errors = 0;
    const maxRequests = 5_000_000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end && ok + errors < maxRequests) {
          if (await once()) ok++;
          else errors++;
        }
      }),
    );
    return { ok, errors };
  };
  try {
    await runFor(Math.min(200, durationMs / 4));
    const started = performance.now();
    const { ok, errors } = await runFor(durationMs);
    return { rps: ok / ((performance.now() - started) / 1000), errors };
  } finally {
    agent.destroy();
  }
}

/** An `openssl passwd` hash (password on stdin, never on the command line), or undefined without openssl. */
function opensslHash(flag: string, password: string): string | undefined {
  if (!findBinary("openssl")) return undefined;
  const result = spawnSync("openssl", ["passwd", flag, "-stdin"], { input: password, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Unauthenticated GET /health against authenticated GET /api/... through one target, in alternating short rounds:
 * the machine's load (other processes) drifts, so each round's ratio compares neighbours in time, and the medians
 * ignore a round that a burst of outside load hit.
 */
async function compareOpenAndAuthed(url: string, authorization: string, concurrency: number, totalMs: number) {
  const rounds = 10;
  const sliceMs = totalMs / (2 * rounds);
  const open: number[] = [];
  const authed: number[] = [];
  const ratios: number[] = [];
  let errors = 0;
  for (let round = 0; round < rounds; round++) {
    const runOpen = () => loadLoop(url, "/health", {}, concurrency, sliceMs);
    const runAuthed = () => loadLoop(url, "/api/2.0/mlflow/experiments/search", { authorization }, concurrency, sliceMs);
    // A-B, B-A, ...: neither side always goes first.
    const [a, b] = round % 2 === 0 ? [await runOpen(), await runAuthed()] : [...[await runAuthed(), await runOpen()].reverse()];
    open.push(a.rps);
    authed.push(b.rps);
    ratios.push(b.rps / a.rps);
    errors += a.errors + b.errors;
  }
  return { open: median(open), authed: median(authed), ratio: median(ratios), errors };
}

async function timedRequest(baseUrl: string, authorization: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const response = await httpRequest(baseUrl, "/api/2.0/mlflow/experiments/search", { headers: { authorization } });
  return { ms: performance.now() - started, status: response.status };
}

export async function runProxyBench(options: BenchOptions): Promise<BenchResult> {
  const { progress } = options;
  for (const [name, pkg] of [["caddy", "caddy"], ["nginx", "nginx-light"], ["envsubst", "gettext-base"]]) {
    if (!findBinary(name)) throw new UserError(`${name} not found: install the Debian package ${pkg} (apt-get install ${pkg})`);
  }
  const machine = {
    cpus: cpus().length,
    loadAverage: loadavg().map((n) => Number(n.toFixed(2))),
    caddy: version("caddy", ["version"]),
    nginx: version(findBinary("nginx")!, ["-v"]),
    node: process.version,
  };
  // Throwaway credentials for this run only; they never leave this process except as hashes in temp files.
  const user = "bench";
  const password = randomBytes(24).toString("base64url");
  const authorization = basicAuth(user, password);

  progress("starting the upstream, caddy and nginx");
  const upstream = await spawnUpstream();
  const running: RunningProxy[] = [];
  try {
    running.push(await startCaddy({ upstream: upstream.hostPort, usersFile: caddyUsersFile({ [user]: password }) }));
    running.push(await startNginx({ upstream: upstream.hostPort, usersFile: htpasswdFile({ [user]: password }) }));
    const targets: { target: Target; url: string; proxy?: RunningProxy }[] = [
      { target: "direct", url: upstream.url },
      ...running.map((proxy) => ({ target: proxy.kind, url: proxy.url, proxy })),
    ];
    for (const { target, url } of targets) {
      const check = await httpRequest(url, "/api/2.0/mlflow/experiments/search", { headers: { authorization } });
      if (check.status !== 200) throw new Error(`${target} answered ${check.status} to the benchmark's credentials`);
    }

    const throughput: ThroughputRow[] = [];
    const durationMs = options.durationSeconds * 1000;
    for (const { target, url } of targets) {
      progress(`small requests through ${target}: unauthenticated GET /health vs authenticated GET /api/...`);
      const { open, authed, ratio, errors } = await compareOpenAndAuthed(url, authorization, options.concurrency, durationMs);
      throughput.push({ target, unauthenticatedRps: Math.round(open), authenticatedRps: Math.round(authed), ratio, errors });
    }

    // Two rounds, the second in reverse order (direct, caddy, nginx, nginx, caddy, direct), each target warmed up with
    // a small upload first; per target the faster run counts (outside load only ever slows a run down), memory and
    // spooling the worse one.
    const uploadPath = "/api/2.0/mlflow-artifacts/artifacts/bench/model.bin";
    const runs = new Map<Target, { seconds: number; rssBeforeBytes?: number; peakRssBytes?: number; spooledBytes?: number }>();
    const order = [...targets, ...[...targets].reverse()];
    for (const [i, { target, url, proxy }] of order.entries()) {
      await measureTransfer(url, uploadPath, { bytes: 64 * MiB, headers: { authorization } });
      progress(`${(options.uploadBytes / MiB).toFixed(0)} MiB streamed upload through ${target} (${i < targets.length ? 1 : 2} of 2)`);
      const rssBeforeBytes = proxy ? rssBytes(proxy.pids()) : undefined;
      const stats = await measureTransfer(url, uploadPath, { bytes: options.uploadBytes, headers: { authorization }, proxy });
      const received = stats.status === 200 ? JSON.parse(stats.body).bodyBytes : -1;
      if (received !== options.uploadBytes) throw new Error(`upload through ${target}: status ${stats.status}, upstream received ${received} of ${options.uploadBytes} bytes`);
      const before = runs.get(target);
      runs.set(target, {
        seconds: Math.min(before?.seconds ?? Infinity, stats.seconds),
        ...(proxy
          ? {
              rssBeforeBytes: Math.min(before?.rssBeforeBytes ?? Infinity, rssBeforeBytes!),
              peakRssBytes: Math.max(before?.peakRssBytes ?? 0, stats.peakRssBytes),
              spooledBytes: Math.max(before?.spooledBytes ?? 0, stats.peakSpoolBytes),
            }
          : {}),
      });
    }
    const directMBps = options.uploadBytes / 1e6 / runs.get("direct")!.seconds;
    const upload: UploadRow[] = targets.map(({ target }) => {
      const run = runs.get(target)!;
      const megabytesPerSecond = options.uploadBytes / 1e6 / run.seconds;
      return { target, ...run, megabytesPerSecond, ratioToDirect: megabytesPerSecond / directMBps };
    });

    const caddyCost: CostRow[] = [];
    for (const cost of options.costs) {
      progress(`caddy with bcrypt cost ${cost}: first logins, wrong passwords, cached logins`);
      const users = ["u1", "u2", "u3"].map((name) => ({ name, password: randomBytes(24).toString("base64url") }));
      const usersFile = users.map(({ name, password: pw }) => `${name} ${caddyHash(pw, cost)}\n`).join("");
      const caddy = await startCaddy({ upstream: upstream.hostPort, usersFile });
      try {
        const first = [];
        for (const { name, password: pw } of users) first.push(await timedRequest(caddy.url, basicAuth(name, pw)));
        const wrong = [];
        for (let i = 0; i < 3; i++) wrong.push(await timedRequest(caddy.url, basicAuth("u1", `${users[0].password}x${i}`)));
        const cached = [];
        for (let i = 0; i < 5; i++) cached.push(await timedRequest(caddy.url, basicAuth("u1", users[0].password)));
        if ([...first, ...cached].some((r) => r.status !== 200) || wrong.some((r) => r.status !== 401)) {
          throw new Error(`caddy with bcrypt cost ${cost} answered unexpected statuses`);
        }
        caddyCost.push({ cost, firstLoginMs: median(first.map((r) => r.ms)), wrongPasswordMs: median(wrong.map((r) => r.ms)), cachedLoginMs: median(cached.map((r) => r.ms)) });
      } finally {
        await caddy.stop();
      }
    }

    const bursts = await runBursts(upstream.hostPort, options.costlyBursts, options.burstRounds, options.burstRequests, progress);

    // The schemes nginx could verify, one user each on one nginx: why generated passwords get {SSHA} (password-hashes.ts).
    const nginxSchemes: SchemeRow[] = [];
    if (options.schemes) {
      const schemePassword = randomBytes(24).toString("base64url");
      const candidates: [string, string | undefined][] = [
        ["{SSHA} (sshaHash)", sshaHash(schemePassword)],
        ["$apr1$ (1000 x MD5)", opensslHash("-apr1", schemePassword)],
        ["$5$ sha256-crypt, 5000 rounds", opensslHash("-5", schemePassword)],
        ["$2b$ bcrypt cost 4", bcrypt.hashSync(schemePassword, 4)],
        ["$2b$ bcrypt cost 10", bcrypt.hashSync(schemePassword, 10)],
      ];
      const present = candidates.filter((c): c is [string, string] => c[1] !== undefined);
      const htpasswd = present.map(([, hash], i) => `scheme${i}:${hash}\n`).join("");
      const nginx = await startNginx({ upstream: upstream.hostPort, usersFile: htpasswd });
      try {
        for (const [i, [scheme]] of present.entries()) {
          progress(`nginx with a ${scheme} hash`);
          const { authed, ratio, errors } = await compareOpenAndAuthed(nginx.url, basicAuth(`scheme${i}`, schemePassword), options.concurrency, Math.max(1500, durationMs / 2));
          if (errors > 0) throw new Error(`nginx rejected the ${scheme} hash`);
          nginxSchemes.push({ scheme, authenticatedRps: Math.round(authed), ratio });
        }
      } finally {
        await nginx.stop();
      }
    }

    const settings = { durationSeconds: options.durationSeconds, concurrency: options.concurrency, uploadBytes: options.uploadBytes, costs: options.costs, schemes: options.schemes, costlyBursts: options.costlyBursts, burstRounds: options.burstRounds, burstRequests: options.burstRequests };
    const atEnd = { ...machine, loadAverageAtEnd: loadavg().map((n) => Number(n.toFixed(2))) };
    return { machine: atEnd, nginxSchemes, options: settings, throughput, upload, caddyCost, bursts, goals: goals(throughput, upload, bursts) };
  } finally {
    for (const proxy of running) await proxy.stop();
    await upstream.stop();
  }
}

/**
 * Bursts of bad credentials against fresh proxies whose users files hold what bootstrap writes: "bench" with a
 * generated password (the default), "chosen" with the weakest password bootstrap accepts. A valid client ("bench") is
 * timed meanwhile. The three an attacker gets for free, each BURST_REQUESTS long: wrong passwords for a known user
 * (Caddy's user guard answers them unless they start with the generated password's first 3 characters), unknown user
 * names (the guard answers them before basicauth, which would check its cost-14 dummy hash), and garbage headers. With
 * `costly`, also wrong passwords that start right (bcrypt 4, no goal) and for "chosen" (bcrypt 11 by design, kept short).
 */
async function runBursts(upstream: string, costly: boolean, rounds: number, burstRequests: number, progress: (line: string) => void): Promise<BurstRow[]> {
  const generated = { user: "bench", password: randomBytes(30).toString("base64url") };
  const chosen = { user: "chosen", password: randomBytes(24).toString("base64url") };
  const hashes = [proxyHashes(generated.password, GENERATED_GUESSES_LOG10), proxyHashes(chosen.password, MIN_GUESSES_LOG10)];
  const caddyFile = `${generated.user} ${hashes[0].caddy}\n${chosen.user} ${hashes[1].caddy}\n`;
  // The guard bootstrap writes: the generated password's first characters required, the chosen one's name only.
  const prefixes = guardPasswordPrefixes(caddyFile, (user) => (user === generated.user ? generated.password : chosen.password));
  if (prefixes.size !== 1) throw new Error("the bench's generated password did not get a guard prefix");
  const caddyGuard = caddyGuardFile(caddyFile, prefixes);
  const htpasswd = `${generated.user}:${hashes[0].htpasswd}\n${chosen.user}:${hashes[1].htpasswd}\n`;
  const scenarios: { scenario: BurstScenario; attack: AttackKind; requests: number; rounds: number }[] = [
    { scenario: "generated", attack: { kind: "known", user: generated.user }, requests: burstRequests, rounds },
    { scenario: "unknown-user", attack: { kind: "unknown" }, requests: burstRequests, rounds },
    { scenario: "garbage", attack: { kind: "garbage" }, requests: burstRequests, rounds },
    ...(costly
      ? [
          // An attacker who knows the generated password's first characters (learned by timing, ~2^18 requests, or
          // from a leaked guard file): every wrong password reaches bcrypt cost 4. Reported, no goal.
          { scenario: "generated-prefix" as const, attack: { kind: "known" as const, user: generated.user, prefix: prefixes.get(generated.user) }, requests: burstRequests, rounds },
          { scenario: "chosen" as const, attack: { kind: "known" as const, user: chosen.user }, requests: BURST_PARALLEL * 2, rounds: 1 },
        ]
      : []),
  ];
  const rows: BurstRow[] = [];
  for (const target of ["caddy", "nginx"] as const) {
    for (const { scenario, attack, requests, rounds } of scenarios) {
      // A fresh proxy per burst: no cache or CPU history carried over from the one before.
      const proxy = target === "caddy" ? await startCaddy({ upstream, usersFile: caddyFile, guardFile: caddyGuard }) : await startNginx({ upstream, usersFile: htpasswd });
      try {
        progress(`${target}: ${rounds} x ${requests} requests (${scenario}), ${BURST_PARALLEL} in parallel, while a valid client is timed (load average ${loadavg()[0].toFixed(2)})`);
        const result = await wrongPasswordBurst(proxy, { attack, valid: generated, requests, parallel: BURST_PARALLEL, rounds, idleSamples: 300 });
        if (result.unexpected > 0) throw new Error(`${target} burst (${scenario}): ${result.unexpected} unexpected answers`);
        rows.push({ target, scenario, ...result });
      } finally {
        await proxy.stop();
      }
    }
  }
  return rows;
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(0)}%`;
}

const BURST_WHAT: Record<BurstScenario, string> = {
  generated: "wrong passwords",
  "unknown-user": "unknown user names",
  garbage: "garbage Authorization headers",
  chosen: "wrong passwords of a chosen-password user",
  "generated-prefix": "wrong passwords with the guard's 3 characters right",
};

function goals(throughput: ThroughputRow[], upload: UploadRow[], bursts: BurstRow[]): Goal[] {
  const row = (target: Target) => throughput.find((r) => r.target === target)!;
  const list: Goal[] = [
    { description: "caddy: authenticated >= 90% of unauthenticated throughput", met: row("caddy").ratio >= 0.9, actual: percent(row("caddy").ratio) },
    { description: "nginx: authenticated >= 50% of unauthenticated throughput", met: row("nginx").ratio >= 0.5, actual: percent(row("nginx").ratio) },
    { description: "no failed requests in the throughput runs", met: throughput.every((r) => r.errors === 0), actual: String(throughput.reduce((n, r) => n + r.errors, 0)) },
  ];
  for (const r of bursts.filter((b) => b.scenario !== "chosen" && b.scenario !== "generated-prefix")) {
    const what = BURST_WHAT[r.scenario];
    if (r.target === "caddy") {
      const limit = Number(((BURST_CPU_LIMIT_SECONDS * r.requests) / BURST_REQUESTS).toFixed(2));
      list.push({ description: `caddy: ${r.requests} ${what} (${r.parallel} in parallel) cost <= ${limit} CPU-seconds`, met: r.proxyCpuSeconds <= limit, actual: `${r.proxyCpuSeconds.toFixed(2)} s (load ${r.loadAverage})` });
    }
    const ratio = r.burstP99Ms / r.idleP99Ms;
    list.push({ description: `${r.target}: valid client's p99 during ${r.requests} ${what} <= ${BURST_P99_RATIO_LIMIT}x its idle p99`, met: ratio <= BURST_P99_RATIO_LIMIT, actual: `${ratio.toFixed(1)}x (${r.idleP99Ms.toFixed(1)} -> ${r.burstP99Ms.toFixed(1)} ms, load ${r.loadAverage})` });
  }
  for (const r of upload.filter((u) => u.target !== "direct")) {
    list.push({ description: `${r.target}: upload >= 50% of direct`, met: r.ratioToDirect >= 0.5, actual: percent(r.ratioToDirect) });
    const growth = (r.peakRssBytes ?? 0) - (r.rssBeforeBytes ?? 0);
    list.push({ description: `${r.target}: flat memory during the upload (growth < ${FLAT_MEMORY_BYTES / MiB} MiB)`, met: growth < FLAT_MEMORY_BYTES, actual: `+${(growth / MiB).toFixed(1)} MiB` });
    list.push({ description: `${r.target}: nothing spooled to disk`, met: r.spooledBytes === 0, actual: `${r.spooledBytes} bytes` });
  }
  return list;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The result as plain-text tables, for people. */
export function formatProxyBench(result: BenchResult): string {
  const { machine, options } = result;
  const mib = (bytes?: number) => (bytes === undefined ? "-" : `${(bytes / MiB).toFixed(0)} MiB`);
  const out: string[] = [];
  out.push(
    `Proxy benchmark: caddy ${machine.caddy.split(" ")[0]}, ${machine.nginx.replace(/^nginx version: /, "")}, node ${machine.node}, ${machine.cpus} CPUs, load average at start ${machine.loadAverage.join(" ")}${machine.loadAverageAtEnd ? `, at end ${machine.loadAverageAtEnd.join(" ")}` : ""}`,
  );
  out.push(`Targets: a burst of ${BURST_REQUESTS} bad credentials (${BURST_PARALLEL} in parallel) costs Caddy <= ${BURST_CPU_LIMIT_SECONDS} CPU-seconds; a valid client's p99 during it <= ${BURST_P99_RATIO_LIMIT}x its idle p99, both proxies (issue 9)`);
  out.push("");
  out.push(`Small requests: ${options.concurrency} keep-alive connections, unauthenticated GET /health and authenticated GET /api/... alternating in 10 rounds (${options.durationSeconds} s in all per target); medians`);
  out.push(
    table(
      ["target", "unauth req/s", "auth req/s", "auth/unauth", "errors"],
      result.throughput.map((r) => [r.target, String(r.unauthenticatedRps), String(r.authenticatedRps), percent(r.ratio), String(r.errors)]),
    ),
  );
  out.push("");
  out.push(`${(options.uploadBytes / MiB).toFixed(0)} MiB upload: one streamed POST with Content-Length, authenticated; best of 2 runs per target (ABC CBA order, 64 MiB warm-up each)`);
  out.push(
    table(
      ["target", "seconds", "MB/s", "vs direct", "proxy RSS before", "proxy peak RSS", "spooled to disk"],
      result.upload.map((r) => [r.target, r.seconds.toFixed(1), r.megabytesPerSecond.toFixed(0), percent(r.ratioToDirect), mib(r.rssBeforeBytes), mib(r.peakRssBytes), r.spooledBytes === undefined ? "-" : `${r.spooledBytes} B`]),
    ),
  );
  if (result.caddyCost.length > 0) {
    out.push("");
    out.push("Caddy basic_auth bcrypt cost: time of one request, median ms (a cached login is the baseline)");
    out.push(
      table(
        ["cost", "first login", "wrong password", "cached login"],
        result.caddyCost.map((r) => [`${r.cost}${r.cost === GENERATED_COST ? " (generated)" : r.cost === WEAKEST_CHOSEN_COST ? " (weakest chosen)" : ""}`, r.firstLoginMs.toFixed(0), r.wrongPasswordMs.toFixed(0), r.cachedLoginMs.toFixed(1)]),
      ),
    );
  }
  if (result.bursts.length > 0) {
    const label: Record<BurstScenario, string> = {
      generated: `wrong passwords, generated-password user (Caddy: guard, 3 characters; nginx: {SSHA})`,
      "unknown-user": "unknown user names",
      garbage: "garbage headers (none, other scheme, not base64, two headers...)",
      chosen: `wrong passwords, weakest chosen password (bcrypt ${WEAKEST_CHOSEN_COST})`,
      "generated-prefix": `wrong passwords with the guard's 3 characters right (bcrypt ${GENERATED_COST} / {SSHA})`,
    };
    out.push("");
    out.push(
      `Bursts of bad credentials, ${BURST_PARALLEL} in parallel, each on a new connection, from a separate attacker process at nice 19; proxy CPU from /proc (per burst, mean over the rounds, less the valid client's requests meanwhile at their idle CPU cost; unadjusted in "incl. valid client"); a valid client (keep-alive, sequential) timed idle (60 requests before each burst) and during the bursts; load = 1-minute load average at the first burst`,
    );
    out.push(
      table(
        ["target", "burst of", "burst", "load", "seconds", "proxy CPU s", "CPU ms/request", "incl. valid client", "idle p99 ms", "burst p99 ms", "p99 ratio", "samples"],
        result.bursts.map((r) => [
          r.target,
          label[r.scenario],
          `${r.rounds} x ${r.requests}`,
          r.loadAverage.toFixed(2),
          r.seconds.toFixed(2),
          r.proxyCpuSeconds.toFixed(2),
          ((r.proxyCpuSeconds * 1000) / r.requests).toFixed(1),
          r.proxyCpuSecondsWithValid.toFixed(2),
          r.idleP99Ms.toFixed(1),
          r.burstP99Ms.toFixed(1),
          `${(r.burstP99Ms / r.idleP99Ms).toFixed(1)}x`,
          String(r.burstSamples),
        ]),
      ),
    );
  }
  if (result.nginxSchemes.length > 0) {
    out.push("");
    out.push("nginx auth_basic_user_file hash schemes (nginx checks the hash on every request): authenticated req/s");
    out.push(table(["scheme", "auth req/s", "vs unauth"], result.nginxSchemes.map((r) => [r.scheme, String(r.authenticatedRps), percent(r.ratio)])));
  }
  out.push("");
  out.push("Goals");
  for (const goal of result.goals) out.push(`  ${goal.met ? "ok    " : "MISSED"}  ${goal.description}: ${goal.actual}`);
  return out.join("\n");
}
