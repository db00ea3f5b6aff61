// The real servers the migrate tests (and the smoke test) stand on: a local S3 server and a throwaway PostgreSQL.
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";

describe("startS3Server", () => {
  let server: S3Server;
  let s3: S3Client;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ["artifacts"] });
    s3 = new S3Client(s3ClientConfig(server));
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
  });

  it("stores and returns an object", async () => {
    const body = randomBytes(1000);
    await s3.send(new PutObjectCommand({ Bucket: "artifacts", Key: "a/b.bin", Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "artifacts", Key: "a/b.bin" }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    const list = await s3.send(new ListObjectsV2Command({ Bucket: "artifacts", Prefix: "a/" }));
    expect(list.Contents?.map((o) => o.Key)).toEqual(["a/b.bin"]);
  });

  it("does multipart uploads", async () => {
    const body = randomBytes(11 * 1024 * 1024 + 17);
    const upload = new Upload({ client: s3, params: { Bucket: "artifacts", Key: "big.bin", Body: body }, partSize: 5 * 1024 * 1024 });
    const parts = new Set<number>();
    upload.on("httpUploadProgress", (p) => p.part && parts.add(p.part));
    await upload.done();
    expect(parts.size).toBe(3);
    const head = await s3.send(new HeadObjectCommand({ Bucket: "artifacts", Key: "big.bin" }));
    expect(head.ContentLength).toBe(body.length);
    const got = await s3.send(new GetObjectCommand({ Bucket: "artifacts", Key: "big.bin" }));
    const digest = createHash("sha256").update(await got.Body!.transformToByteArray()).digest("hex");
    expect(digest).toBe(createHash("sha256").update(body).digest("hex"));
  });

  it("refuses a missing bucket", async () => {
    await expect(s3.send(new PutObjectCommand({ Bucket: "nope", Key: "x", Body: "x" }))).rejects.toThrow(/bucket/i);
  });
});
