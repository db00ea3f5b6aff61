// The per-row hash of the verification checksum, identical to PostgreSQL's `hashtextextended(text, 0)`: Bob Jenkins'
// lookup3 as PostgreSQL implements it in src/common/hashfn.c (hash_bytes_extended), for a little-endian server.
// About ten times cheaper per row than md5 through node:crypto, on both sides. A big-endian server hashes differently:
// `probeRowHash` notices and the migration falls back to md5 (see verify.ts).

import { float8Hex, LITTLE_ENDIAN } from "./convert.ts";

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
    this.addBytes(this.buf, this.buf.write(text, 0, "utf8"));
  }

  /** Adds the hash of buf[0..len) (UTF-8 bytes). */
  addBytes(buf: Uint8Array, len: number) {
    hashBytes(buf, len, this.out);
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

const HEX_CODES = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * A canonical row (convert.ts: canonicalField per column, concatenated) written as UTF-8 bytes in place, one field at a
 * time: the same bytes as Buffer.from(<the row's canonical string>), without building that string per row (measured:
 * the string path was 40% of the copying thread's CPU).
 */
export class CanonicalRow {
  buf = Buffer.allocUnsafe(4096);
  pos = 0;

  private ensure(n: number) {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n + 1024));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  private ascii(s: string) {
    const { buf } = this;
    for (let i = 0; i < s.length; i++) buf[this.pos++] = s.charCodeAt(i);
  }

  null() {
    this.ensure(1);
    this.buf[this.pos++] = 45; // "-"
  }

  /** `<UTF-8 byte length>:<text>` */
  text(s: string) {
    const start = this.pos;
    const prefix = String(s.length);
    this.ensure(prefix.length + 1 + s.length);
    this.ascii(prefix);
    this.buf[this.pos++] = 58; // ":"
    const { buf } = this;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        // Not ASCII: the byte length differs from the UTF-16 length; write it the long way.
        this.pos = start;
        const len = Buffer.byteLength(s, "utf8");
        const p = String(len);
        this.ensure(p.length + 1 + len);
        this.ascii(p);
        this.buf[this.pos++] = 58;
        this.pos += this.buf.write(s, this.pos, "utf8");
        return;
      }
      buf[this.pos++] = c;
    }
  }

  /** `16:<the double's 8 big-endian bytes in hex>` (convert.ts float8Hex), NaN as PostgreSQL's. */
  float8(x: number) {
    if (Number.isNaN(x) || !LITTLE_ENDIAN) return this.text(float8Hex(x));
    this.ensure(19);
    const { buf } = this;
    buf[this.pos++] = 49; // "1"
    buf[this.pos++] = 54; // "6"
    buf[this.pos++] = 58; // ":"
    f64[0] = x;
    for (let i = 7; i >= 0; i--) {
      const b = f64Bytes[i];
      buf[this.pos++] = HEX_CODES[b >> 4];
      buf[this.pos++] = HEX_CODES[b & 15];
    }
  }
}
