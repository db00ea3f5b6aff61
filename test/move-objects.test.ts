// npm run move-objects between two real S3 servers (s3rver processes): the old MinIO's bucket into the new server's.
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let oldServer: S3Server;
let newServer: S3Server;
let tmp: ReturnType<typeof makeTempDir>;
let secretFile: string;
const objects: Record<string, Buffer> = {
  "1/abc/artifacts/model/MLmodel": Buffer.from("artifact_path: model\n"),
  "1/abc/artifacts/empty.txt": Buffer.alloc(0),
  "2/def/artifacts/nested/dir/with space & ü.json": Buffer.from('{"a": 1}'),
  "2/def/artifacts/weights.bin": randomBytes(6 * 1024 * 1024 + 123), // multipart at the source: an ETag "...-2"
};

beforeAll(async () => {
  [oldServer, newServer] = await Promise.all([startS3Server({ buckets: ["mlflow"] }), startS3Server({ buckets: ["mlflow", "other"] })]);
  const s3 = new S3Client(s3ClientConfig(oldServer));
  for (const [key, body] of Object.entries(objects)) {
    if (body.length > 5 * 1024 * 1024) await new Upload({ client: s3, partSize: 5 * 1024 * 1024, params: { Bucket: "mlflow", Key: key, Body: body } }).done();
    else await s3.send(new PutObjectCommand({ Bucket: "mlflow", Key: key, Body: body, ContentType: "text/plain" }));
  }
  tmp = makeTempDir("move-objects");
  secretFile = join(tmp.dir, "s3rver-secret");
  writeFileSync(secretFile, "S3RVER\n", { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await Promise.all([oldServer?.stop(), newServer?.stop()]);
  tmp?.cleanup();
});

function move(args: string[], env: Record<string, string> = {}) {
  // Run from a folder of its own (the stack-folder defaults read .env and secrets/ there).
  const r = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/move-objects.ts"), ...args], {
    cwd: tmp.dir,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const both = (extra: string[] = []) => [
  "--from-endpoint", oldServer.endpoint, "--from-bucket", "mlflow", "--from-access-key", "S3RVER", "--from-secret-file", secretFile,
  "--to-endpoint", newServer.endpoint, "--to-access-key", "S3RVER", "--to-secret-file", secretFile, ...extra,
];

describe("npm run move-objects", () => {
  it("copies every object (count, bytes, keys, contents) and says it verified them", () => {
    const r = move(both(["--json"]));
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    const bytes = Object.values(objects).reduce((sum, b) => sum + b.length, 0);
    expect(result).toMatchObject({ copied: 4, skipped: 0, verified: true, mismatches: [], extra: 0 });
    expect(result.from).toMatchObject({ bucket: "mlflow", objects: 4, bytes });
    expect(result.to).toMatchObject({ bucket: "mlflow", objects: 4, bytes });
    expect(r.stderr).toMatch(/move-objects: 4\/4 objects/);
  });

  it("the copies are byte for byte the originals, and keep the content type", async () => {
    const s3 = new S3Client(s3ClientConfig(newServer));
    for (const [key, body] of Object.entries(objects)) {
      const got = await s3.send(new GetObjectCommand({ Bucket: "mlflow", Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body), key).toBe(true);
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: "mlflow", Key: "1/abc/artifacts/model/MLmodel" }));
    expect(head.ContentType).toBe("text/plain");
  });

  it("a second run copies nothing (multipart objects included: the source ETag is recorded)", () => {
    const r = move(both());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/copied 0 objects \(0\.0 MiB\), skipped 4 already there/);
    expect(r.stdout).toMatch(/^verified: every object is in the target/m);
  });

  it("copies again what changed or went missing in the target, and leaves the target's own objects alone", async () => {
    const s3 = new S3Client(s3ClientConfig(newServer));
    await s3.send(new PutObjectCommand({ Bucket: "mlflow", Key: "1/abc/artifacts/model/MLmodel", Body: "tampered, longer than before" }));
    await s3.send(new PutObjectCommand({ Bucket: "mlflow", Key: "only-in-target.txt", Body: "mine" }));
    const r = move(both(["--json"]));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 1, skipped: 3, verified: true, extra: 1 });
    const got = await s3.send(new GetObjectCommand({ Bucket: "mlflow", Key: "1/abc/artifacts/model/MLmodel" }));
    expect(await got.Body!.transformToString()).toBe("artifact_path: model\n");
  });

  it("--dry-run copies nothing and says how many it would", () => {
    const r = move(both(["--to-bucket", "other", "--dry-run", "--json"]));
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ dryRun: true, copied: 0, verified: false });
    expect(result.mismatches).toHaveLength(4);
    expect(result.to.objects).toBe(0);
  });

  it("reads the keys from .env and secrets/ in the stack's folder when none are given", () => {
    writeFileSync(join(tmp.dir, ".env"), "MINIO_ROOT_USER=S3RVER\nMLFLOW_BUCKET=mlflow\n");
    spawnSync("mkdir", ["-p", join(tmp.dir, "secrets")]);
    writeFileSync(join(tmp.dir, "secrets", "minio_root_password"), "S3RVER\n", { mode: 0o600 });
    const r = move(["--from-endpoint", oldServer.endpoint, "--to-endpoint", newServer.endpoint, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, skipped: 4 });
  });

  it("--help", () => {
    const r = move(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: npm run move-objects/);
  });

  it.each([
    ["no --from-endpoint", ["--to-endpoint", "http://127.0.0.1:1"], 2, /--from-endpoint is required/],
    ["a bad URL", ["--from-endpoint", "minio:9000", "--to-endpoint", "http://127.0.0.1:1"], 2, /--from-endpoint must start with http/],
    ["an unknown flag", ["--bogus"], 2, /Unknown option '--bogus'.*--help/],
    ["a bad --concurrency", () => both(["--concurrency", "0"]), 2, /--concurrency must be a whole number/],
    ["a missing source bucket", () => both(["--from-bucket", "nope"]), 1, /source s3:\/\/nope at .*: bucket not found — check --from-bucket/],
    ["a missing target bucket", () => both(["--to-bucket", "nope"]), 1, /target s3:\/\/nope at .*: bucket not found — create it first/],
    ["a wrong secret", () => both(["--to-secret-file", join(tmp.dir, "wrong")]), 1, /--to-secret-file .*wrong does not exist/],
    ["the same bucket twice", () => [...both(), "--to-endpoint", oldServer.endpoint], 1, /source and target are the same bucket/],
    ["a server that is down", () => both(["--to-endpoint", "http://127.0.0.1:9"]), 1, /cannot reach the S3 server \(ECONNREFUSED\)/],
  ] as [string, string[] | (() => string[]), number, RegExp][])("%s: one line and the exit code", (_name, args, code, message) => {
    const r = move(typeof args === "function" ? args() : args);
    expect(r.code).toBe(code);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  // (s3rver checks the access key, not the signature: the stack test's Silo stand-in checks both.)
  it("access denied with a wrong key: one line that names the keys", () => {
    const r = move(both(["--from-access-key", "not-a-key"]));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/access denied — check/);
  });
});
