// One way to talk to the stack's S3 store (MinIO) or any S3-compatible server, for every task that needs it.
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";

export interface S3Endpoint {
  endpoint?: string;
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Client options: path-style addressing, and checksums only where S3 requires them (MinIO and other S3 servers may
 * not take the SDK's default CRC32 / aws-chunked bodies). */
export function s3ClientConfig(target: S3Endpoint, maxAttempts?: number): S3ClientConfig {
  return {
    endpoint: target.endpoint,
    region: target.region ?? "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
  };
}

export function s3Client(target: S3Endpoint, maxAttempts?: number): S3Client {
  return new S3Client(s3ClientConfig(target, maxAttempts));
}
