// Proves an artifact reached the bucket (not a folder inside the mlflow container): HeadObject on its key.
import { HeadObjectCommand, S3ServiceException } from "@aws-sdk/client-s3";
import { s3Client } from "../s3-client.ts";
import { CheckFailure } from "./advice.ts";

export interface S3Target {
  endpoint: string;
  region: string;
  bucket: string;
  /** Key prefix of MLflow's --artifacts-destination inside the bucket ("" when it is s3://BUCKET). */
  prefix: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export async function headArtifactObject(target: S3Target, artifactPath: string, expectedBytes: number, timeoutMs: number): Promise<string> {
  const key = [target.prefix.replace(/^\/+|\/+$/g, ""), artifactPath].filter(Boolean).join("/");
  const client = s3Client(target, 1);
  const where = `s3://${target.bucket}/${key} at ${target.endpoint}`;
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: key }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    if (head.ContentLength !== expectedBytes)
      throw new CheckFailure(`${where} has ${head.ContentLength} bytes, uploaded ${expectedBytes}`, "the bucket holds a different object: check MLflow's --artifacts-destination and that nothing else writes there");
    return `${where} (${head.ContentLength} bytes)`;
  } catch (error) {
    if (error instanceof CheckFailure) throw error;
    const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
    const name = error instanceof Error ? error.name : "Error";
    if (status === 404 || name === "NotFound" || name === "NoSuchKey" || name === "NoSuchBucket")
      throw new CheckFailure(
        `${where}: not found`,
        `the artifact did not land in bucket '${target.bucket}': MLflow must run with --artifacts-destination s3://${target.bucket}${target.prefix ? `/${target.prefix}` : ""} and MLFLOW_S3_ENDPOINT_URL pointing at MinIO (else artifacts stay in a folder inside the container); use --s3-bucket / --s3-prefix if yours differ`,
      );
    if (status === 403 || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch")
      throw new CheckFailure(`${where}: access denied (${name})`, "wrong S3 credentials for the check: MINIO_ROOT_USER in .env and secrets/minio_root_password, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY");
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ECONNREFUSED" || name === "TimeoutError" || name === "AbortError")
      throw new CheckFailure(`${where}: ${code ?? name}`, `nothing answers at --s3-endpoint ${target.endpoint}: the stack does not publish MinIO; tunnel or publish port 9000 and pass its URL`);
    throw new CheckFailure(`${where}: ${name}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    client.destroy();
  }
}
