// `mc` of the mc stand-in image: the subcommands the stack's createbuckets job (and a health check) use.
//   mc alias set NAME URL [ACCESS SECRET]   keys from stdin (two lines) when not given; checked against the server
//   mc mb [--ignore-existing|-p] NAME/BUCKET
//   mc anonymous set private NAME/BUCKET    (a bucket is private unless a policy says otherwise: checks it exists)
//   mc ready NAME
// The aliases live in $MC_CONFIG_DIR/config.json (default ~/.mc), mode 0600, as mc keeps them.
import { CreateBucketCommand, HeadBucketCommand, ListBucketsCommand } from "@aws-sdk/client-s3";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { s3Client } from "../../../../scripts/lib/s3-client.ts";

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
} else {
  fail(`the mc stand-in does not implement: mc ${args.join(" ")}`);
}
