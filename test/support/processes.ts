// Starts a long-running native process for a test and stops it (and its children) afterwards.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface RunningProcess {
  child: ChildProcess;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output: () => string;
  stop: () => Promise<void>;
}

export function startProcess(command: string, args: string[], options: SpawnOptions = {}): RunningProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true, ...options });
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid!, "SIGTERM"); // the whole process group: nginx workers, etc.
      } catch {
        return;
      }
      const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
        await exited;
      }
    },
  };
}

/** Resolves once something accepts TCP connections on host:port; rejects after `timeoutMs` or if `proc` exits. */
export async function waitForPort(port: number, { host = "127.0.0.1", timeoutMs = 15_000, proc }: { host?: string; timeoutMs?: number; proc?: RunningProcess } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null) {
      throw new Error(`process exited with ${proc.child.exitCode} before listening on ${port}:\n${proc.output()}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms${proc ? `:\n${proc.output()}` : ""}`);
}

/**
 * Waits until `proc` listens on `port`; if it never does, stops it and runs `cleanup` (its temp dir, say) before
 * rethrowing. Returns the function that does both, for the caller's own `stop`.
 */
export async function waitUntilListening(proc: RunningProcess, port: number, cleanup: () => void, timeoutMs?: number): Promise<() => Promise<void>> {
  const stop = async () => {
    await proc.stop();
    cleanup();
  };
  try {
    await waitForPort(port, { proc, timeoutMs });
  } catch (error) {
    await stop();
    throw error;
  }
  return stop;
}
