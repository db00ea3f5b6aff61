// What MLflow's own S3 key may do (issue 9): read, write, list and delete objects in MLFLOW_BUCKET; nothing else —
// no other bucket, no bucket creation, no admin API. Run by the stack test against the running S3 server.
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { createHash, randomBytes } from "node:crypto";
import { s3Client, type S3Endpoint } from "../../scripts/lib/s3-client.ts";
import { Sha256 } from "./stand-ins/programs/sha256.ts";


/** Status of a SigV4-signed GET on the server's admin API (MinIO/Silo: /minio/admin/v3/...). */
async function adminStatus(target: S3Endpoint & { endpoint: string }, path: string): Promise<number> {
  const url = new URL(path, target.endpoint);
  const signer = new SignatureV4({ service: "s3", region: target.region ?? "us-east-1", sha256: Sha256, credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey } });
  const signed: { headers: Record<string, string> } = (await signer.sign({
    method: "GET",
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port) || undefined,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: { host: url.host, "x-amz-content-sha256": createHash("sha256").update("").digest("hex") },
  } as never)) as never;
  const answer = await fetch(url, { headers: signed.headers });
  await answer.arrayBuffer();
  return answer.status;
}

const denied = async (what: string, work: () => Promise<unknown>): Promise<string | undefined> => {
  try {
    await work();
    return `MLflow's key could ${what}`;
  } catch (error) {
    const status = (error as S3ServiceException).$metadata?.httpStatusCode;
    if (status === 403) return undefined;
    return `${what}: expected 403 Access Denied, got ${status ?? (error as Error).message}`;
  }
};

/**
 * Checks MLflow's key against the server; the root key makes a second bucket to probe. Returns the violations (empty
 * when the key is limited as intended) and cleans up what it created.
 */
export async function checkMlflowKey(root: S3Endpoint & { endpoint: string }, mlflow: S3Endpoint & { endpoint: string }, bucket: string): Promise<string[]> {
  const out: string[] = [];
  const asRoot = s3Client(root, 2);
  const asMlflow = s3Client(mlflow, 1);
  const key = `least-privilege/${randomBytes(4).toString("hex")}.txt`;
  const other = `other-${randomBytes(4).toString("hex")}`;
  // Allowed: its bucket's objects.
  try {
    await asMlflow.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "mlflow" }));
    const got = await asMlflow.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if ((await got.Body!.transformToString()) !== "mlflow") out.push("MLflow's key read back something else");
    const listed = await asMlflow.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "least-privilege/" }));
    if (!listed.Contents?.some((o) => o.Key === key)) out.push("MLflow's key cannot list its bucket");
    await asMlflow.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    out.push(`MLflow's key cannot use its own bucket: ${(error as Error).name}: ${(error as Error).message}`);
  }
  // Refused: everything else.
  await asRoot.send(new CreateBucketCommand({ Bucket: other }));
  await asRoot.send(new PutObjectCommand({ Bucket: other, Key: "secret.txt", Body: "not MLflow's" }));
  for (const problem of [
    await denied("create a bucket", () => asMlflow.send(new CreateBucketCommand({ Bucket: `${other}-new` }))),
    await denied("list another bucket", () => asMlflow.send(new ListObjectsV2Command({ Bucket: other }))),
    await denied("read another bucket's object", () => asMlflow.send(new GetObjectCommand({ Bucket: other, Key: "secret.txt" }))),
    await denied("write into another bucket", () => asMlflow.send(new PutObjectCommand({ Bucket: other, Key: "x.txt", Body: "x" }))),
  ])
    if (problem) out.push(problem);
  for (const path of ["/minio/admin/v3/list-users", "/minio/admin/v3/info"]) {
    const status = await adminStatus(mlflow, path);
    if (status !== 403) out.push(`MLflow's key on the admin API ${path}: expected 403, got ${status}`);
  }
  await asRoot.send(new DeleteObjectCommand({ Bucket: other, Key: "secret.txt" })).catch(() => undefined);
  await asRoot.send(new DeleteBucketCommand({ Bucket: other })).catch(() => undefined);
  return out;
}
