// `mcli` (and its `mc` link) of the Silo stand-in image: the subcommands the stack's createbuckets job uses.
//   mc alias set NAME URL [ACCESS SECRET]   keys from stdin (two lines) when not given; checked against the server
//   mc mb [--ignore-existing|-p] NAME/BUCKET
//   mc anonymous set private NAME/BUCKET    (a bucket is private unless a policy says otherwise: checks it exists)
//   mc ready NAME
//   mc admin user add NAME [ACCESS [SECRET]]   missing keys from stdin, one per line (pgsty/mc cmd/admin-user-add.go)
//   mc admin user info NAME ACCESS             prints "AccessKey: / Status: / PolicyName:" lines
//   mc admin policy create NAME POLICY FILE    creates or replaces a canned policy
//   mc admin policy attach NAME POLICY --user ACCESS   fails when already attached, as the server refuses it
// The admin calls go to the stand-in server's /minio/admin/v3/ paths, SigV4-signed with the alias's key.
// The aliases live in $MC_CONFIG_DIR/config.json (default ~/.mc), mode 0600, as mc keeps them.
import { CreateBucketCommand, HeadBucketCommand, ListBucketsCommand } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { s3Client } from "../../../../scripts/lib/s3-client.ts";
import { Sha256 } from "./sha256.ts";

interface Alias {
  url: string;
  accessKey: string;
  secretKey: string;
}
const configDir = process.env.MC_CONFIG_DIR || join(homedir(), ".mc");
const configFile = join(configDir, "config.json");
const readConfig = (): { aliases: Record<string, Alias> } => {
  try {
    return JSON.parse(readFileSync(configFile, "utf8"));
  } catch {
    return { aliases: {} };
  }
};
function fail(message: string): never {
  process.stderr.write(`mc: <ERROR> ${message}\n`);
  process.exit(1);
}
function target(arg: string | undefined) {
  const [name, bucket] = (arg ?? "").split("/", 2);
  const alias = readConfig().aliases[name];
  if (!alias) fail(`Unable to find alias '${name}'`);
  return { alias, bucket, client: s3Client({ endpoint: alias.url, accessKeyId: alias.accessKey, secretAccessKey: alias.secretKey }, 1) };
}
const reason = (error: unknown) => (error as { Code?: string; name?: string }).Code ?? (error as Error).name ?? String(error);


/** A signed call to the server's admin API; returns the parsed JSON answer or fails with the server's error code. */
async function adminCall(aliasName: string, method: string, op: string, query: Record<string, string>, body?: unknown): Promise<Record<string, unknown>> {
  const alias = readConfig().aliases[aliasName];
  if (!alias) fail(`Unable to find alias '${aliasName}'`);
  const url = new URL(`/minio/admin/v3/${op}`, alias.url);
  const text = body === undefined ? "" : JSON.stringify(body);
  const signer = new SignatureV4({ service: "s3", region: "us-east-1", sha256: Sha256, credentials: { accessKeyId: alias.accessKey, secretAccessKey: alias.secretKey } });
  const signed: { headers: Record<string, string> } = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port) || undefined,
    path: url.pathname,
    query,
    headers: { host: url.host, "x-amz-content-sha256": createHash("sha256").update(text).digest("hex") },
    body: text,
  } as never) as never;
  const answer = await fetch(`${url}?${new URLSearchParams(query)}`, { method, headers: signed.headers, body: text || undefined }).catch((error: Error) => fail(`Unable to reach ${url.host}. ${error.message}`));
  const reply = await answer.text();
  if (!answer.ok) fail(`${/<Code>([^<]*)<\/Code>/.exec(reply)?.[1] ?? answer.status}: ${/<Message>([^<]*)<\/Message>/.exec(reply)?.[1] ?? reply}`);
  return reply ? JSON.parse(reply) : {};
}

const args = process.argv.slice(2).filter((a) => a !== "--quiet" && a !== "-q");
const [command, sub] = args;
if (command === "alias" && sub === "set") {
  const [name, url, given, givenSecret] = args.slice(2);
  if (!name || !url) fail("usage: mc alias set NAME URL [ACCESSKEY SECRETKEY]");
  let accessKey = given;
  let secretKey = givenSecret;
  if (accessKey === undefined) {
    const lines = readFileSync(0, "utf8").split("\n");
    [accessKey, secretKey] = [lines[0] ?? "", lines[1] ?? ""];
  }
  try {
    await s3Client({ endpoint: url, accessKeyId: accessKey, secretAccessKey: secretKey ?? "" }, 1).send(new ListBucketsCommand({}));
  } catch (error) {
    fail(`Unable to initialize new alias from the provided credentials. ${reason(error)}`);
  }
  const config = readConfig();
  config.aliases[name] = { url, accessKey, secretKey: secretKey ?? "" };
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  writeFileSync(configFile, JSON.stringify({ version: "10", ...config }, null, 2), { mode: 0o600 });
  process.stdout.write(`Added \`${name}\` successfully.\n`);
} else if (command === "mb") {
  const ignore = args.includes("--ignore-existing") || args.includes("-p");
  const path = args.slice(1).find((a) => !a.startsWith("-"));
  const { bucket, client } = target(path);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    process.stdout.write(`Bucket created successfully \`${path}\`.\n`);
  } catch (error) {
    const code = reason(error);
    if (!(ignore && (code === "BucketAlreadyOwnedByYou" || code === "BucketAlreadyExists"))) fail(`Unable to make bucket \`${path}\`. ${code}`);
    process.stdout.write(`Bucket created successfully \`${path}\`.\n`);
  }
} else if (command === "anonymous" && sub === "set") {
  const [permission, path] = args.slice(2);
  if (permission !== "private") fail(`the mc stand-in only sets 'private', got '${permission}'`);
  const { client, bucket } = target(path);
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    fail(`Unable to set anonymous \`private\` for \`${path}\`. ${reason(error)}`);
  }
  process.stdout.write(`Access permission for \`${path}\` is set to \`private\`\n`);
} else if (command === "ready") {
  const { alias } = target(sub);
  for (;;) {
    const answer = await fetch(new URL("/minio/health/ready", alias.url)).catch(() => undefined);
    if (answer?.ok) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  process.stdout.write(`The cluster '${sub}' is ready\n`);
} else if (command === "admin" && sub === "user" && args[2] === "add") {
  const [name, given, givenSecret] = args.slice(3);
  const lines = given === undefined || givenSecret === undefined ? readFileSync(0, "utf8").split("\n") : [];
  const accessKey = given ?? lines.shift() ?? "";
  const secretKey = givenSecret ?? lines.shift() ?? "";
  await adminCall(name, "PUT", "add-user", { accessKey }, { secretKey, status: "enabled" });
  process.stdout.write(`Added user \`${accessKey}\` successfully.\n`);
} else if (command === "admin" && sub === "user" && args[2] === "info") {
  const [name, accessKey] = args.slice(3);
  const info = await adminCall(name, "GET", "user-info", { accessKey });
  process.stdout.write(`AccessKey: ${accessKey}\nStatus: ${info.status}\nPolicyName: ${info.policyName}\nMemberOf: []\n`);
} else if (command === "admin" && sub === "policy" && args[2] === "create") {
  const [name, policy, file] = args.slice(3);
  if (!file) fail("usage: mc admin policy create TARGET POLICYNAME POLICYFILE");
  await adminCall(name, "PUT", "add-canned-policy", { name: policy }, JSON.parse(readFileSync(file, "utf8")));
  process.stdout.write(`Created policy \`${policy}\` successfully.\n`);
} else if (command === "admin" && sub === "policy" && args[2] === "attach") {
  const [name, policy] = args.slice(3);
  const user = args[args.indexOf("--user") + 1];
  if (!args.includes("--user") || !user) fail("usage: mc admin policy attach TARGET POLICY --user USER");
  await adminCall(name, "POST", "idp/builtin/policy/attach", {}, { policies: [policy], user });
  process.stdout.write(`Attached Policies: [${policy}]\nTo User: ${user}\n`);
} else {
  fail(`the mc stand-in does not implement: mc ${args.join(" ")}`);
}
