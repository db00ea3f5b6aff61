// The per-row hash of the verification checksum, identical to PostgreSQL's `hashtextextended(text, 0)`: Bob Jenkins'
// lookup3 as PostgreSQL implements it in src/common/hashfn.c (hash_bytes_extended), for a little-endian server.
// About ten times cheaper per row than md5 through node:crypto, on both sides. A big-endian server hashes differently:
// `probeRowHash` notices and the migration falls back to md5 (see verify.ts).

const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** hashtextextended(<the UTF-8 bytes buf[0..len)>, 0) as PostgreSQL returns it: [high 32 bits signed, low 32 bits unsigned]. */
export function hashBytes(buf: Uint8Array, len: number, out: Int32Array) {
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  let i = 0;
  let rest = len;
  while (rest >= 12) {
    a = (a + (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))) | 0;
    b = (b + (buf[i + 4] | (buf[i + 5] << 8) | (buf[i + 6] << 16) | (buf[i + 7] << 24))) | 0;
    c = (c + (buf[i + 8] | (buf[i + 9] << 8) | (buf[i + 10] << 16) | (buf[i + 11] << 24))) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
    i += 12;
    rest -= 12;
  }
  // The last 0..11 bytes, little-endian into a and b; c's lowest byte is reserved for the length.
  switch (rest) {
    case 11: c = (c + (buf[i + 10] << 24)) | 0; // falls through
    case 10: c = (c + (buf[i + 9] << 16)) | 0; // falls through
    case 9: c = (c + (buf[i + 8] << 8)) | 0; // falls through
    case 8: b = (b + (buf[i + 7] << 24)) | 0; // falls through
    case 7: b = (b + (buf[i + 6] << 16)) | 0; // falls through
    case 6: b = (b + (buf[i + 5] << 8)) | 0; // falls through
    case 5: b = (b + buf[i + 4]) | 0; // falls through
    case 4: a = (a + (buf[i + 3] << 24)) | 0; // falls through
    case 3: a = (a + (buf[i + 2] << 16)) | 0; // falls through
    case 2: a = (a + (buf[i + 1] << 8)) | 0; // falls through
    case 1: a = (a + buf[i]) | 0;
  }
  // final(a, b, c)
  c ^= b; c = (c - rot(b, 14)) | 0;
  a ^= c; a = (a - rot(c, 11)) | 0;
  b ^= a; b = (b - rot(a, 25)) | 0;
  c ^= b; c = (c - rot(b, 16)) | 0;
  a ^= c; a = (a - rot(c, 4)) | 0;
  b ^= a; b = (b - rot(a, 14)) | 0;
  c ^= b; c = (c - rot(b, 24)) | 0;
  out[0] = b;
  out[1] = c;
}

/**
 * Order-independent exact sum of the signed 64-bit row hashes (as PostgreSQL's sum(bigint) gives it): kept as two
 * float64 halves, folded into a bigint before they could lose precision.
 */
export class HashSum {
  private hi = 0;
  private lo = 0;
  private pending = 0;
  private total = 0n;
  private buf = Buffer.allocUnsafe(64 * 1024);
  private out = new Int32Array(2);

  /** Adds the hash of `text` (its UTF-8 bytes). */
  addText(text: string) {
    if (text.length * 3 > this.buf.length) this.buf = Buffer.allocUnsafe(text.length * 3 + 1024);
    const len = this.buf.write(text, 0, "utf8");
    hashBytes(this.buf, len, this.out);
    this.hi += this.out[0];
    this.lo += this.out[1] >>> 0;
    if (++this.pending === 1 << 20) this.fold();
  }

  addBigInt(v: bigint) {
    this.total += v;
  }

  private fold() {
    this.total += BigInt(this.hi) * 4294967296n + BigInt(this.lo);
    this.hi = this.lo = this.pending = 0;
  }

  value(): bigint {
    this.fold();
    return this.total;
  }
}
