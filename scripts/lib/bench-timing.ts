// Timing a command for the benchmarks: wall seconds and peak RSS of the command and its children.
import { spawnSync } from "node:child_process";
import { findBinary } from "../../test/support/binaries.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Runs a command under /usr/bin/time (when installed); returns wall seconds and peak RSS (KiB, the largest process). */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { seconds: number; rssKiB?: number; stdout: string; stderr: string; status: number | null } {
  const t0 = performance.now();
  const hasTime = !!findBinary("time", ["/usr/bin"]);
  const r = hasTime
    ? spawnSync("/usr/bin/time", ["-f", "RSSKIB=%M", cmd, ...args], { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 })
    : spawnSync(cmd, args, { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  const m = /RSSKIB=(\d+)/.exec(r.stderr ?? "");
  return { seconds, rssKiB: m ? Number(m[1]) : undefined, stdout: r.stdout, stderr: r.stderr, status: r.status };
}
