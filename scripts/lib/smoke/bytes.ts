// Test data that is never held in memory: a stream of `size` pseudo-random bytes and its sha256, computed as it is sent.
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";

const CHUNK = 1024 * 1024;

export interface GeneratedBody {
  stream: Readable;
  /** The sha256 of everything the stream produced; valid once it has ended. */
  sha256: () => string;
}

/**
 * `size` bytes: one random 1 MiB block, each copy stamped with its index so that a dropped, repeated or
 * reordered chunk changes the hash. Memory stays at a couple of chunks whatever `size` is.
 */
export function generatedBody(size: number, onBytes?: (sent: number) => void): GeneratedBody {
  const block = randomBytes(Math.min(CHUNK, size));
  const hash = createHash("sha256");
  let digest: string | undefined;
  async function* chunks() {
    let sent = 0;
    for (let index = 0; sent < size; index++) {
      const length = Math.min(CHUNK, size - sent);
      const chunk = Buffer.from(block.subarray(0, length));
      if (length >= 8) chunk.writeBigUInt64BE(BigInt(index), 0);
      hash.update(chunk);
      sent += length;
      onBytes?.(sent);
      yield chunk;
    }
    digest = hash.digest("hex");
  }
  return {
    stream: Readable.from(chunks(), { objectMode: false, highWaterMark: 2 * CHUNK }),
    sha256: () => {
      if (!digest) throw new Error("the generated body has not been fully read");
      return digest;
    },
  };
}

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}
