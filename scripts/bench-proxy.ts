// npm run bench (or bench:proxy): measures both proxies, with our very configs, against direct access in one run.
import { parseCli, runCli, UsageError } from "./lib/cli.ts";
import { formatProxyBench, runProxyBench } from "./lib/bench-proxy.ts";

const SCRIPT = "bench:proxy";
const HELP = `Usage: npm run bench:proxy -- [options]

Runs caddy/Caddyfile and the nginx template as local processes (caddy, nginx and envsubst must be installed) in front
of a stand-in upstream and prints, measured in one run:
  - small-request throughput, unauthenticated (/health) and authenticated, through each proxy and direct;
  - a large streamed upload through each proxy vs direct: MB/s, proxy peak memory, bytes spooled to disk;
  - what Caddy's bcrypt cost means for a first login and a wrong password;
  - bursts of bad credentials (200 wrong passwords of a known user, 200 unknown user names, 200 garbage headers; 20
    in parallel, from a separate process at nice 19): the proxy's CPU time (from /proc) and a valid client's p99
    latency during the burst against its idle p99; targets: <= 2 CPU-seconds on Caddy, <= 3x the idle p99;
  - authenticated throughput through nginx for each password hash scheme it could verify.
Takes a few minutes with the defaults. Figures depend on the machine and on what else runs on it.

Options:
  --duration <s>       seconds of throughput measurement per target (default 8)
  --concurrency <n>    keep-alive connections of the load loop (default 8)
  --upload-mib <n>     upload size in MiB (default 2048)
  --costs <list>       bcrypt costs to time through Caddy, comma-separated (default 4,10,11; "none" to skip)
  --no-schemes         skip the nginx hash scheme comparison
  --burst-rounds <n>   bursts per proxy and scenario, samples pooled (default 5)
  --burst-requests <n> requests per burst (default 200, what the targets are for; the CPU goal scales with it)
  --no-costly-bursts   skip the burst that is expensive by design (40 wrong passwords of a chosen-password user at
                       bcrypt 11: several CPU-seconds on Caddy)
  --strict             exit with status 1 when a goal is missed
  --json               print the result as JSON instead of tables
  -h, --help           show this help`;

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got "${value}"`);
  return n;
}

await runCli(SCRIPT, async () => {
  const { values } = parseCli(SCRIPT, process.argv.slice(2), {
    duration: { type: "string" },
    concurrency: { type: "string" },
    "upload-mib": { type: "string" },
    costs: { type: "string" },
    "no-schemes": { type: "boolean" },
    "no-costly-bursts": { type: "boolean" },
    "burst-rounds": { type: "string" },
    "burst-requests": { type: "string" },
    strict: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const costs =
    values.costs === "none"
      ? []
      : (values.costs ?? "4,10,11")
          .split(",")
          .map((c) => Number(c.trim()))
          .filter((c, i, all) => all.indexOf(c) === i);
  if (costs.some((c) => !Number.isInteger(c) || c < 4 || c > 15)) throw new UsageError(`--costs must be bcrypt costs between 4 and 15, got "${values.costs}"`);
  const started = performance.now();
  const result = await runProxyBench({
    durationSeconds: positive("duration", values.duration, 8),
    concurrency: Math.round(positive("concurrency", values.concurrency, 8)),
    uploadBytes: Math.round(positive("upload-mib", values["upload-mib"], 2048) * 1024 * 1024),
    costs,
    schemes: !values["no-schemes"],
    costlyBursts: !values["no-costly-bursts"],
    burstRounds: Math.round(positive("burst-rounds", values["burst-rounds"], 5)),
    burstRequests: Math.round(positive("burst-requests", values["burst-requests"], 200)),
    progress: (line) => process.stderr.write(`${SCRIPT}: ${line}\n`),
  });
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else console.log(formatProxyBench(result));
  const missed = result.goals.filter((g) => !g.met).length;
  process.stderr.write(`${SCRIPT}: done in ${((performance.now() - started) / 1000).toFixed(0)} s, ${missed === 0 ? "all goals met" : `${missed} goal(s) missed`}\n`);
  return values.strict && missed > 0 ? 1 : 0;
});
