// `minio` of the MinIO stand-in image: `minio server DIR [--address :9000] [--console-address ADDR]`.
// Root keys are read the way MinIO reads them (cmd/common-main.go): for each *_FILE variable, /run/secrets/<value> if
// that is a file, else <value> as a path; an unreadable file counts as unset (silently); a file value wins over the
// plain variable; nothing at all means minioadmin:minioadmin; a password under 8 characters is fatal. The S3 API is
// s3rver (data in DIR) behind a front on :9000 that refuses requests not signed (SigV4) with exactly those keys.
import { readFileSync, statSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { verify } from "./sigv4.ts";

// Plain require() calls: esbuild bundles them (s3rver is CommonJS and has no types).
const S3rver = require("s3rver");
const AWSAccount = require("s3rver/lib/models/account");

function readFromSecret(value: string): string {
  let path = value;
  try {
    if (statSync(`/run/secrets/${value}`).isFile()) path = `/run/secrets/${value}`;
  } catch {
    // not a Docker secret name: the value is the path
  }
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

function fromFile(variable: string, fileVariable: string) {
  const file = process.env[fileVariable];
  if (file === undefined) return;
  const value = readFromSecret(file);
  if (value) process.env[variable] = value;
}

function fail(message: string): never {
  process.stderr.write(`FATAL ${message}\n`);
  process.exit(1);
}

const [command, dir, ...rest] = process.argv.slice(2);
if (command !== "server" || !dir) fail(`the MinIO stand-in runs only \`minio server DIR\`, got: minio ${process.argv.slice(2).join(" ")}`);
let address = ":9000";
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === "--address") address = rest[++i];
  else if (rest[i] === "--console-address") i++;
  else fail(`unknown flag ${rest[i]}`);
}
fromFile("MINIO_ACCESS_KEY", "MINIO_ACCESS_KEY_FILE");
fromFile("MINIO_SECRET_KEY", "MINIO_SECRET_KEY_FILE");
fromFile("MINIO_ROOT_USER", "MINIO_ROOT_USER_FILE");
fromFile("MINIO_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD_FILE");
const accessKeyId = process.env.MINIO_ROOT_USER || process.env.MINIO_ACCESS_KEY || "minioadmin";
const secretAccessKey = process.env.MINIO_ROOT_PASSWORD || process.env.MINIO_SECRET_KEY || "minioadmin";
if (accessKeyId.length < 3) fail("Invalid credentials: access key length should be at least 3");
if (secretAccessKey.length < 8) fail("Invalid credentials: secret key length should be at least 8");
if (accessKeyId === "minioadmin") process.stderr.write("WARNING: Detected default credentials 'minioadmin:minioadmin'\n");

const backendPort = 9100;
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
await new S3rver({ directory: dir, address: "127.0.0.1", port: backendPort, silent: true, vhostBuckets: false }).run();

const xmlError = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
const front = createServer((req, res) => {
  const url = req.url ?? "/";
  if (/^\/minio\/health\/(live|ready|cluster)(\?|$)/.test(url)) {
    req.resume();
    res.writeHead(200, { "content-length": 0 }).end();
    return;
  }
  const verdict = verify(req.method ?? "GET", url, req.headers, { accessKeyId, secretAccessKey });
  if (!verdict.ok) {
    req.resume();
    const body = xmlError(verdict.code, verdict.message);
    res.writeHead(403, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) }).end(body);
    return;
  }
  const upstream = httpRequest({ host: "127.0.0.1", port: backendPort, method: req.method, path: url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on("error", () => res.destroy());
  req.pipe(upstream);
});
const [host, port] = address.startsWith(":") ? ["0.0.0.0", Number(address.slice(1))] : [address.split(":")[0], Number(address.split(":")[1])];
front.listen(port, host, () => process.stdout.write(`MinIO stand-in: S3 API on ${host}:${port}, data in ${dir}, root user ${accessKeyId}\n`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
