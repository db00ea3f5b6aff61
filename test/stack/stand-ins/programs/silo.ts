// `silo` of the Silo stand-in image (pgsty/silo, the maintained MinIO fork): `silo server DIR [--address :9000]
// [--console-address ADDR]`.
// Root keys are read the way MinIO and Silo read them (cmd/common-main.go `readFromSecret`): for each *_FILE
// variable, /run/secrets/<value> if that is a file, else <value> as a path; an unreadable file counts as unset
// (silently); a file value wins over the plain variable; nothing at all means minioadmin:minioadmin; a password under
// 8 characters is fatal. The S3 API is s3rver (data in DIR) behind a front on :9000 that
//   - refuses requests not signed (SigV4) with a known key: the root key or an IAM user's;
//   - lets the root key do anything, and an IAM user only what its attached policies allow (Allow/Deny statements,
//     `s3:*`-style action wildcards, ARN globs; bucket-level actions match the bare bucket ARN only, as Silo does
//     since SN-2026-004); a user without a policy may do nothing;
//   - serves a small admin API under /minio/admin/v3/ to the root key only (users, canned policies, attach), with the
//     shapes of madmin's paths; bodies are plain JSON here (madmin encrypts them with the root secret: the stand-in's
//     own mc speaks this form).
// IAM state is kept in DIR/stand-in-iam.json (the objects in DIR/s3rver), so users survive a restart like the real
// server's.
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, request as httpRequest, type ServerResponse } from "node:http";
import { join } from "node:path";
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
if (command !== "server" || !dir) fail(`the Silo stand-in runs only \`silo server DIR\`, got: silo ${process.argv.slice(2).join(" ")}`);
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
const rootAccessKey = process.env.MINIO_ROOT_USER || process.env.MINIO_ACCESS_KEY || "minioadmin";
const rootSecretKey = process.env.MINIO_ROOT_PASSWORD || process.env.MINIO_SECRET_KEY || "minioadmin";
if (rootAccessKey.length < 3) fail("Invalid credentials: access key length should be at least 3");
if (rootSecretKey.length < 8) fail("Invalid credentials: secret key length should be at least 8");
if (rootAccessKey === "minioadmin") process.stderr.write("WARNING: Detected default credentials 'minioadmin:minioadmin'\n");

// ---- IAM ----
interface Statement {
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource: string | string[];
}
interface Iam {
  users: Record<string, { secretKey: string; policies: string[] }>;
  policies: Record<string, { Statement: Statement[] }>;
}
const iamFile = join(dir, "stand-in-iam.json");
let iam: Iam = { users: {}, policies: {} };
try {
  iam = JSON.parse(readFileSync(iamFile, "utf8"));
} catch {
  // first start
}
const saveIam = () => {
  writeFileSync(iamFile, JSON.stringify(iam), { mode: 0o600 });
};
const secretOf = (accessKey: string) => (accessKey === rootAccessKey ? rootSecretKey : iam.users[accessKey]?.secretKey);

const list = (value: string | string[]) => (Array.isArray(value) ? value : [value]);
const glob = (pattern: string, text: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`).test(text);

/** The S3 action and resource ARN(s) of a path-style request, as MinIO's router names them. */
function s3Action(method: string, url: URL, headers: IncomingMessage["headers"]): { action: string; resources: string[] }[] {
  const [, bucket = "", ...keyParts] = url.pathname.split("/");
  const key = decodeURIComponent(keyParts.join("/"));
  const q = url.searchParams;
  if (!bucket) return [{ action: method === "GET" ? "s3:ListAllMyBuckets" : "s3:Unknown", resources: ["arn:aws:s3:::*"] }];
  const bucketArn = `arn:aws:s3:::${bucket}`;
  if (!key) {
    const one = (action: string) => [{ action, resources: [bucketArn] }];
    if (q.has("policy")) return one(method === "GET" ? "s3:GetBucketPolicy" : method === "DELETE" ? "s3:DeleteBucketPolicy" : "s3:PutBucketPolicy");
    if (method === "POST" && q.has("delete")) return [{ action: "s3:DeleteObject", resources: [`${bucketArn}/*`] }];
    if (method === "PUT") return one(q.size === 0 ? "s3:CreateBucket" : "s3:PutBucketOther");
    if (method === "DELETE") return one(q.size === 0 ? "s3:DeleteBucket" : "s3:DeleteBucketOther");
    if (q.has("location")) return one("s3:GetBucketLocation");
    if (q.has("uploads")) return one("s3:ListBucketMultipartUploads");
    if (method === "GET" || method === "HEAD") return one("s3:ListBucket");
    return one("s3:Unknown");
  }
  const objectArn = `${bucketArn}/${key}`;
  const one = (action: string) => [{ action, resources: [objectArn] }];
  if (method === "GET" || method === "HEAD") return one(q.has("uploadId") ? "s3:ListMultipartUploadParts" : "s3:GetObject");
  if (method === "DELETE") return one(q.has("uploadId") ? "s3:AbortMultipartUpload" : "s3:DeleteObject");
  if (method === "PUT" || method === "POST") {
    const out = one("s3:PutObject");
    const source = headers["x-amz-copy-source"];
    if (typeof source === "string") out.push({ action: "s3:GetObject", resources: [`arn:aws:s3:::${decodeURIComponent(source.replace(/^\//, "").split("?")[0])}`] });
    return out;
  }
  return one("s3:Unknown");
}

function allowed(user: string, action: string, resource: string): boolean {
  let allow = false;
  for (const name of iam.users[user]?.policies ?? []) {
    for (const statement of iam.policies[name]?.Statement ?? []) {
      const actionMatch = list(statement.Action).some((a) => glob(a, action));
      const resourceMatch = list(statement.Resource).some((r) => glob(r, resource));
      if (!actionMatch || !resourceMatch) continue;
      if (statement.Effect === "Deny") return false;
      allow = true;
    }
  }
  return allow;
}

// ---- HTTP ----
const xmlError = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
function refuse(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string) {
  req.resume();
  const body = xmlError(code, message);
  res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) }).end(body);
}
const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => resolve(text));
    req.on("error", reject);
  });
const json = (res: ServerResponse, status: number, value: unknown) => {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
};

async function admin(req: IncomingMessage, res: ServerResponse, url: URL) {
  const op = url.pathname.slice("/minio/admin/v3/".length);
  const q = url.searchParams;
  try {
    if (op === "add-user" && req.method === "PUT") {
      const accessKey = q.get("accessKey") ?? "";
      const { secretKey } = JSON.parse(await readBody(req)) as { secretKey: string };
      if (accessKey.length < 3 || accessKey === rootAccessKey) return refuse(req, res, 400, "XMinioAdminInvalidAccessKey", "invalid access key");
      if (typeof secretKey !== "string" || secretKey.length < 8 || secretKey.length > 40) return refuse(req, res, 400, "XMinioAdminInvalidSecretKey", "secret key length should be between 8 and 40");
      const previous = iam.users[accessKey];
      iam.users[accessKey] = { secretKey, policies: previous?.policies ?? [] };
      AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
      saveIam();
      return json(res, 200, {});
    }
    if (op === "user-info" && req.method === "GET") {
      const user = iam.users[q.get("accessKey") ?? ""];
      if (!user) return refuse(req, res, 404, "XMinioAdminNoSuchUser", "The specified user does not exist.");
      return json(res, 200, { status: "enabled", policyName: user.policies.join(",") });
    }
    if (op === "add-canned-policy" && req.method === "PUT") {
      const name = q.get("name") ?? "";
      const policy = JSON.parse(await readBody(req)) as { Statement?: Statement[] };
      if (!name || !Array.isArray(policy.Statement)) return refuse(req, res, 400, "XMinioMalformedIAMPolicy", "policy has no Statement list");
      for (const statement of policy.Statement) {
        // SN-2026-005: a resource that names no bucket is refused.
        for (const resource of list(statement.Resource)) if (!/^arn:aws:s3:::[^*]|^arn:aws:s3:::\*$/.test(resource)) return refuse(req, res, 400, "XMinioMalformedIAMPolicy", `bad resource ${resource}`);
      }
      iam.policies[name] = { Statement: policy.Statement };
      saveIam();
      return json(res, 200, {});
    }
    if (op === "idp/builtin/policy/attach" && req.method === "POST") {
      const { policies, user } = JSON.parse(await readBody(req)) as { policies: string[]; user: string };
      const entry = iam.users[user];
      if (!entry) return refuse(req, res, 404, "XMinioAdminNoSuchUser", "The specified user does not exist.");
      for (const name of policies) if (!iam.policies[name]) return refuse(req, res, 404, "XMinioAdminNoSuchPolicy", `policy ${name} does not exist`);
      const fresh = policies.filter((name) => !entry.policies.includes(name));
      if (fresh.length === 0) return refuse(req, res, 400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect.");
      entry.policies.push(...fresh);
      saveIam();
      return json(res, 200, {});
    }
    return refuse(req, res, 501, "NotImplemented", `the Silo stand-in's admin API does not implement ${req.method} ${op}`);
  } catch (error) {
    return refuse(req, res, 400, "XMinioAdminBadRequest", (error as Error).message);
  }
}

const backendPort = 9100;
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
AWSAccount.DUMMY_ACCOUNT.createKeyPair(rootAccessKey, rootSecretKey);
for (const [accessKey, user] of Object.entries(iam.users)) AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, user.secretKey);
mkdirSync(join(dir, "s3rver"), { recursive: true });
await new S3rver({ directory: join(dir, "s3rver"), address: "127.0.0.1", port: backendPort, silent: true, vhostBuckets: false }).run();

const front = createServer((req, res) => {
  const raw = req.url ?? "/";
  if (/^\/minio\/health\/(live|ready|cluster)(\?|$)/.test(raw)) {
    req.resume();
    res.writeHead(200, { "content-length": 0 }).end();
    return;
  }
  const verdict = verify(req.method ?? "GET", raw, req.headers, secretOf);
  if (!verdict.ok) return refuse(req, res, 403, verdict.code, verdict.message);
  const url = new URL(raw, "http://stand-in");
  const isRoot = verdict.accessKeyId === rootAccessKey;
  if (url.pathname.startsWith("/minio/admin/")) {
    if (!isRoot) return refuse(req, res, 403, "AccessDenied", "Access Denied.");
    void admin(req, res, url);
    return;
  }
  if (!isRoot) {
    for (const { action, resources } of s3Action(req.method ?? "GET", url, req.headers)) {
      if (!resources.every((resource) => allowed(verdict.accessKeyId, action, resource))) return refuse(req, res, 403, "AccessDenied", "Access Denied.");
    }
  }
  const upstream = httpRequest({ host: "127.0.0.1", port: backendPort, method: req.method, path: raw, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on("error", () => res.destroy());
  req.pipe(upstream);
});
const [host, port] = address.startsWith(":") ? ["0.0.0.0", Number(address.slice(1))] : [address.split(":")[0], Number(address.split(":")[1])];
front.listen(port, host, () => process.stdout.write(`Silo stand-in: S3 API on ${host}:${port}, data in ${dir}, root user ${rootAccessKey}\n`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
