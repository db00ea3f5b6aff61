// PostgreSQL's 64-bit hash functions, as the row hash of the verification checksum needs them (record-hash.ts):
// Bob Jenkins' lookup3 as src/common/hashfn.c implements it (hash_bytes_extended, hash_bytes_uint32_extended) with
// seed 0, for a little-endian server; the results as two 32-bit halves (out[0] = high half signed, out[1] = low half),
// no BigInt per value. A big-endian server hashes bytes differently: `chooseRowHash` (verify.ts) notices and the
// migration falls back to md5.

const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** hashfn.c final(a, b, c), result ((uint64) b << 32) | c into out. */
function final(a: number, b: number, c: number, out: Int32Array) {
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

/** hash_bytes_extended(buf[start..start + len), 0): what hashtextextended (deterministic collation) and hashvarlenaextended (bytea) return. */
export function hashBytes(buf: Uint8Array, len: number, out: Int32Array, start = 0) {
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  let i = start;
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
  final(a, b, c, out);
}

const INIT4 = (0x9e3779b9 + 4 + 3923095) | 0;

/** hash_bytes_uint32_extended(k, 0) (hashfn.c): what hashint2/4/8extended and hashcharextended (bool) end in. */
export function hashUint32(k: number, out: Int32Array) {
  final((INIT4 + k) | 0, INIT4, INIT4, out);
}

const scratch = new DataView(new ArrayBuffer(8));

/** hashint8extended(v, 0) (hashfunc.c): the high half folded into the low one, then hash_uint32_extended. For in-range
 * values hashint2extended and hashint4extended give the same (both sign-extend to int32 and hash that). */
export function hashInt8(v: bigint, out: Int32Array) {
  scratch.setBigInt64(0, v);
  hashInt8Words(scratch.getInt32(0), scratch.getInt32(4), out);
}

/** hashInt8 of the value whose high 32 bits are `hi` (signed) and low 32 bits `lo` (either sign). */
export function hashInt8Words(hi: number, lo: number, out: Int32Array) {
  hashUint32(lo ^ (hi >= 0 ? hi : ~hi), out);
}

const INIT8 = (0x9e3779b9 + 8 + 3923095) | 0;

/** hashvarlenaextended(float8send(x), 0): the 8 big-endian bytes of the double, read by lookup3 as two little-endian
 * words; NaN as PostgreSQL's NaN (float8in('NaN'), what binary.ts and the text COPY store). */
export function hashFloat8(x: number, out: Int32Array) {
  if (x !== x) {
    scratch.setUint32(0, 0x7ff80000);
    scratch.setUint32(4, 0);
  } else scratch.setFloat64(0, x);
  final((INIT8 + scratch.getInt32(0, true)) | 0, (INIT8 + scratch.getInt32(4, true)) | 0, INIT8, out);
}

/** hashvarlenaextended(float4send(x), 0): 4 bytes hash like one little-endian uint32. */
export function hashFloat4(x: number, out: Int32Array) {
  if (x !== x) scratch.setUint32(0, 0x7fc00000);
  else scratch.setFloat32(0, x);
  hashUint32(scratch.getInt32(0, true), out);
}

let utf8 = Buffer.allocUnsafe(64 * 1024);

/**
 * hashtextextended(s, 0) of the UTF-8 bytes of `s`. ASCII (the usual MLflow key, uuid, tag) is hashed straight from
 * the UTF-16 code units, 12 at a time as hash_bytes_extended reads bytes; the first block holding anything else
 * restarts the whole string through a UTF-8 encode (lone surrogates become U+FFFD, as when the value is sent).
 */
export function hashString(s: string, out: Int32Array) {
  const len = s.length;
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  let i = 0;
  for (; len - i >= 12; i += 12) {
    const c0 = s.charCodeAt(i), c1 = s.charCodeAt(i + 1), c2 = s.charCodeAt(i + 2), c3 = s.charCodeAt(i + 3);
    const c4 = s.charCodeAt(i + 4), c5 = s.charCodeAt(i + 5), c6 = s.charCodeAt(i + 6), c7 = s.charCodeAt(i + 7);
    const c8 = s.charCodeAt(i + 8), c9 = s.charCodeAt(i + 9), c10 = s.charCodeAt(i + 10), c11 = s.charCodeAt(i + 11);
    if ((c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7 | c8 | c9 | c10 | c11) > 0x7f) return hashUtf8(s, out);
    a = (a + (c0 | (c1 << 8) | (c2 << 16) | (c3 << 24))) | 0;
    b = (b + (c4 | (c5 << 8) | (c6 << 16) | (c7 << 24))) | 0;
    c = (c + (c8 | (c9 << 8) | (c10 << 16) | (c11 << 24))) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
  }
  // The last 0..11 code units, as hashBytes' switch: bytes 0-3 into a, 4-7 into b, 8-10 into c above its lowest byte.
  let m = 0;
  let ch = 0;
  switch (len - i) {
    case 11: ch = s.charCodeAt(i + 10); m |= ch; c = (c + (ch << 24)) | 0; // falls through
    case 10: ch = s.charCodeAt(i + 9); m |= ch; c = (c + (ch << 16)) | 0; // falls through
    case 9: ch = s.charCodeAt(i + 8); m |= ch; c = (c + (ch << 8)) | 0; // falls through
    case 8: ch = s.charCodeAt(i + 7); m |= ch; b = (b + (ch << 24)) | 0; // falls through
    case 7: ch = s.charCodeAt(i + 6); m |= ch; b = (b + (ch << 16)) | 0; // falls through
    case 6: ch = s.charCodeAt(i + 5); m |= ch; b = (b + (ch << 8)) | 0; // falls through
    case 5: ch = s.charCodeAt(i + 4); m |= ch; b = (b + ch) | 0; // falls through
    case 4: ch = s.charCodeAt(i + 3); m |= ch; a = (a + (ch << 24)) | 0; // falls through
    case 3: ch = s.charCodeAt(i + 2); m |= ch; a = (a + (ch << 16)) | 0; // falls through
    case 2: ch = s.charCodeAt(i + 1); m |= ch; a = (a + (ch << 8)) | 0; // falls through
    case 1: ch = s.charCodeAt(i); m |= ch; a = (a + ch) | 0;
  }
  if (m > 0x7f) return hashUtf8(s, out);
  final(a, b, c, out);
}

function hashUtf8(s: string, out: Int32Array) {
  if (s.length * 3 > utf8.length) utf8 = Buffer.allocUnsafe(s.length * 3 + 1024);
  hashBytes(utf8, utf8.write(s, 0, "utf8"), out);
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

  /** Adds the row hash whose high 32 bits are `hi` (signed) and low 32 bits `lo` (either sign: taken unsigned). */
  add(hi: number, lo: number) {
    this.hi += hi | 0;
    this.lo += lo >>> 0;
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

/** The signed 64-bit value of the halves in `out` (tests, probes). */
export function toBigInt(out: Int32Array): bigint {
  return (BigInt(out[0]) << 32n) + BigInt(out[1] >>> 0);
}
