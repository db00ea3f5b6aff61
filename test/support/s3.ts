// A real S3-compatible server for tests: s3rver (npm) as its own process, data in a temp dir, random port.
// It speaks the S3 REST API incl. multipart uploads; its fixed credentials are S3RVER/S3RVER.
// Clients must send `requestChecksumCalculation: "WHEN_REQUIRED"` (s3rver predates the SDK's default CRC32 /
// aws-chunked bodies) — `s3ClientConfig()` below gives a ready config.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { freePort } from "./ports.ts";
import { startProcess, waitUntilListening } from "./processes.ts";
import { makeTempDir } from "./tmp.ts";

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** Starts s3rver on 127.0.0.1; `buckets` are created at start. */
export async function startS3Server({ buckets = [] }: { buckets?: string[] } = {}): Promise<S3Server> {
  const bin = join(dirname(require.resolve("s3rver/package.json")), "bin", "s3rver.js");
  const { dir, cleanup } = makeTempDir("s3");
  const port = await freePort();
  const args = [bin, "-d", dir, "-a", "127.0.0.1", "-p", String(port), "--silent", "--no-vhost-buckets"];
  for (const bucket of buckets) args.push("--configure-bucket", bucket);
  const proc = startProcess(process.execPath, args);
  const stop = await waitUntilListening(proc, port, cleanup);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    stop,
  };
}

/** Options for `new S3Client(...)` that talk to `server` (the same the tasks use). */
export { s3ClientConfig } from "../../scripts/lib/s3-client.ts";
