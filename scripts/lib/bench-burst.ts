// Bursts of bad credentials against a running proxy: what they cost the proxy in CPU time (read from /proc) and what
// they do to a valid client's latency meanwhile. Used by the proxy benchmark (bench-proxy.ts).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { loadavg, setPriority } from "node:os";
import { basicAuth, type RunningProxy } from "../../test/support/proxies.ts";

const PATH = "/api/2.0/mlflow/experiments/search";

let clockTicks: number | undefined;
/** Kernel clock ticks per second (USER_HZ), the unit of utime/stime in /proc/<pid>/stat. */
function ticksPerSecond(): number {
  clockTicks ??= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;
  return clockTicks;
}

/** User + system CPU seconds the given processes have used so far (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks / ticksPerSecond();
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** One request; resolves with its status and duration in ms. */
function timed(url: string, authorization: string, agent: Agent | false): Promise<{ status: number; ms: number }> {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: hostname, port, path: PATH, headers: { authorization }, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      res.on("error", () => resolve({ status: 0, ms: performance.now() - started }));
    });
    req.on("error", () => resolve({ status: 0, ms: performance.now() - started }));
    req.end();
  });
}

/**
 * What the attacker sends: wrong passwords for a user of the users file ("known"), random user names that are not in
 * it ("unknown"), or garbage Authorization headers (none, empty, other schemes, no colon, not base64, two headers).
 */
/** `prefix`: the start every wrong password has (an attacker who knows the characters Caddy's user guard requires). */
export type AttackKind = { kind: "known"; user: string; prefix?: string } | { kind: "unknown" } | { kind: "garbage" };

export interface BurstOptions {
  attack: AttackKind;
  /** The valid client's credentials (its requests are timed before and during the burst). */
  valid: { user: string; password: string };
  requests: number;
  parallel: number;
  /** Bursts in a row (the valid client's samples are pooled over them). */
  rounds: number;
  /** Sequential valid requests that give the idle p99, spread over the rounds (each round's just before its burst). */
  idleSamples: number;
}

export interface BurstResult {
  requests: number;
  parallel: number;
  rounds: number;
  /**
   * CPU seconds the burst cost the proxy's processes (mean per burst): what they used from its start to its last
   * answer, less the valid client's share (its requests meanwhile x the CPU per valid request measured idle just
   * before). A niced attacker on a loaded machine makes a burst last seconds, and the valid client's thousands of
   * proxied requests would otherwise count as the attacker's.
   */
  proxyCpuSeconds: number;
  /** The same, valid client's requests included (what /proc says, unadjusted). */
  proxyCpuSecondsWithValid: number;
  /** Seconds per burst (mean). */
  seconds: number;
  idleP99Ms: number;
  burstP99Ms: number;
  /** Valid requests timed during the burst. */
  burstSamples: number;
  /** Answers that were not the expected 401 (or 400 from nginx for two headers) or 200 (valid): should be 0. */
  unexpected: number;
  /** 1-minute load average when the first burst started (other processes on the machine show here). */
  loadAverage: number;
}

/**
 * The attacker, a separate Node process at nice 19 (not a thread of this one): the valid client's latency must show
 * what the burst costs the PROXY, not this process's own event loop or a CPU share the attacker takes from it.
 * Sends `requests` requests, `parallel` at a time, each on a new connection; prints how many got an unexpected answer.
 */
const ATTACKER = `
const { request } = require("node:http");
const { randomBytes } = require("node:crypto");
const { url, attack, requests, parallel, path } = JSON.parse(process.argv[1]);
const { hostname, port } = new URL(url);
const b64 = (text) => Buffer.from(text).toString("base64");
const secret = () => randomBytes(30).toString("base64url");
const garbage = [
  () => ({}),
  () => ({ authorization: "" }),
  () => ({ authorization: "Bearer " + secret() }),
  () => ({ authorization: "Basic " + b64(secret()) }),
  () => ({ authorization: "Basic !!" + secret() }),
  () => ({ authorization: "basic " + b64("x" + secret().slice(0, 8) + ":" + secret()) }),
  () => ({ Authorization: ["Basic " + b64("x" + secret().slice(0, 8) + ":" + secret()), "Basic " + b64(secret())] }),
  () => ({ authorization: "Basic " + secret() + secret() + secret() }),
];
let next = 0, unexpected = 0;
const headersFor = (i) => {
  if (attack.kind === "known") return { authorization: "Basic " + b64(attack.user + ":" + (attack.prefix || "") + secret()) };
  if (attack.kind === "unknown") return { authorization: "Basic " + b64("u" + randomBytes(6).toString("hex") + ":" + secret()) };
  return garbage[i % garbage.length]();
};
const once = (i) => new Promise((resolve) => {
  const req = request({ host: hostname, port, path, headers: headersFor(i), agent: false }, (res) => {
    res.resume();
    res.on("end", () => resolve(res.statusCode));
    res.on("error", () => resolve(0));
  });
  req.on("error", () => resolve(0));
  req.end();
});
Promise.all(Array.from({ length: parallel }, async () => {
  while (next < requests) {
    const status = await once(next++);
    // nginx refuses two Authorization headers with 400 before any check; everything else must be a 401.
    if (status !== 401 && status !== 400) unexpected++;
  }
})).then(() => process.stdout.write(String(unexpected)));
`;

function attack(url: string, kind: AttackKind, requests: number, parallel: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", ATTACKER, JSON.stringify({ url, attack: kind, requests, parallel, path: PATH })], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      setPriority(child.pid!, 19);
    } catch {
      // not permitted here: the attacker runs at our priority (the figures say so in its load average)
    }
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.stderr.on("data", (chunk) => (err += chunk));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 && /^\d+$/.test(out) ? resolve(Number(out)) : reject(new Error(`the attacker process failed (${code}): ${err.trim()}`))));
  });
}

/**
 * A valid client (one keep-alive connection, sequential requests, as an MLflow client does) is timed idle, then
 * while `rounds` bursts of `requests` distinct wrong passwords arrive `parallel` at a time (each round one burst, so a
 * p99 rests on enough samples). CPU is per burst: the mean over the rounds (see BurstResult.proxyCpuSeconds).
 */
export async function wrongPasswordBurst(proxy: RunningProxy, options: BurstOptions): Promise<BurstResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const validAuth = basicAuth(options.valid.user, options.valid.password);
  let unexpected = 0;
  const validRequest = async () => {
    const result = await timed(proxy.url, validAuth, agent);
    if (result.status !== 200) unexpected++;
    return result.ms;
  };
  try {
    await validRequest(); // Caddy verifies (and caches) the valid login once
    const idle: number[] = [];
    const during: number[] = [];
    let cpu = 0;
    let cpuWithValid = 0;
    let seconds = 0;
    let loadAverage: number | undefined;
    for (let round = 0; round < options.rounds; round++) {
      // Idle samples right before each burst: the machine's other load drifts, so compare neighbours in time.
      const idleCpuBefore = cpuSeconds(proxy.pids());
      const idleCount = Math.ceil(options.idleSamples / options.rounds);
      for (let i = 0; i < idleCount; i++) idle.push(await validRequest());
      const cpuPerValid = (cpuSeconds(proxy.pids()) - idleCpuBefore) / idleCount;
      const duringBefore = during.length;
      let bursting = true;
      const validLoop = (async () => {
        while (bursting) during.push(await validRequest());
      })();
      const cpuBefore = cpuSeconds(proxy.pids());
      const started = performance.now();
      loadAverage ??= loadavg()[0];
      unexpected += await attack(proxy.url, options.attack, options.requests, options.parallel);
      seconds += (performance.now() - started) / 1000;
      const used = cpuSeconds(proxy.pids()) - cpuBefore;
      const validShare = (during.length - duringBefore) * cpuPerValid;
      cpuWithValid += used;
      cpu += Math.max(0, used - validShare);
      bursting = false;
      await validLoop;
    }
    return {
      requests: options.requests,
      parallel: options.parallel,
      rounds: options.rounds,
      proxyCpuSeconds: cpu / options.rounds,
      proxyCpuSecondsWithValid: cpuWithValid / options.rounds,
      seconds: seconds / options.rounds,
      idleP99Ms: percentile(idle, 99),
      burstP99Ms: percentile(during, 99),
      burstSamples: during.length,
      unexpected,
      loadAverage: Number((loadAverage ?? loadavg()[0]).toFixed(2)),
    };
  } finally {
    agent.destroy();
  }
}
