// AWS Signature Version 4 checks for the MinIO stand-in's front: header-signed and presigned (query) requests, as S3
// computes them (path as sent, query re-encoded and sorted, signed headers trimmed). The payload hash is taken from
// x-amz-content-sha256 as declared (not recomputed): the point is that a wrong key is refused, as MinIO refuses it.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

export type Verdict = { ok: true; accessKeyId: string } | { ok: false; code: "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"; message: string };

const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, "%20"));
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const hmac = (key: Buffer | string, s: string) => createHmac("sha256", key).update(s).digest();

function canonicalQuery(rawQuery: string, without: string[]): string {
  const pairs = rawQuery
    .split("&")
    .filter(Boolean)
    .map((part) => {
      const at = part.indexOf("=");
      return at < 0 ? [decode(part), ""] : [decode(part.slice(0, at)), decode(part.slice(at + 1))];
    })
    .filter(([key]) => !without.includes(key))
    .map(([key, value]) => [encode(key), encode(value)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([key, value]) => `${key}=${value}`).join("&");
}

function headerValue(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return text.trim().replace(/\s+/g, " ");
}

/** Checks `method url` with `headers` against a known key pair: one, or a lookup of the secret by access key. */
export function verify(
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  keys: { accessKeyId: string; secretAccessKey: string } | ((accessKeyId: string) => string | undefined),
): Verdict {
  const secretOf = typeof keys === "function" ? keys : (id: string) => (id === keys.accessKeyId ? keys.secretAccessKey : undefined);
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  const query = new URLSearchParams(rawQuery);
  let credential: string, signedHeaders: string, signature: string, amzDate: string, payloadHash: string, excluded: string[];
  const authorization = headerValue(headers, "authorization");
  if (authorization.startsWith("AWS4-HMAC-SHA256 ")) {
    const fields = Object.fromEntries(
      authorization
        .slice("AWS4-HMAC-SHA256 ".length)
        .split(",")
        .map((part) => part.trim().split("=", 2) as [string, string]),
    );
    credential = fields.Credential ?? "";
    signedHeaders = fields.SignedHeaders ?? "";
    signature = fields.Signature ?? "";
    amzDate = headerValue(headers, "x-amz-date");
    payloadHash = headerValue(headers, "x-amz-content-sha256") || sha256("");
    excluded = [];
  } else if (query.get("X-Amz-Algorithm") === "AWS4-HMAC-SHA256") {
    credential = query.get("X-Amz-Credential") ?? "";
    signedHeaders = query.get("X-Amz-SignedHeaders") ?? "";
    signature = query.get("X-Amz-Signature") ?? "";
    amzDate = query.get("X-Amz-Date") ?? "";
    payloadHash = "UNSIGNED-PAYLOAD";
    excluded = ["X-Amz-Signature"];
  } else if (authorization) {
    return { ok: false, code: "AccessDenied", message: "only AWS Signature Version 4 is accepted" };
  } else {
    return { ok: false, code: "AccessDenied", message: "Access Denied." };
  }
  const [accessKeyId, ...scopeParts] = credential.split("/");
  const secretAccessKey = secretOf(accessKeyId);
  if (secretAccessKey === undefined) return { ok: false, code: "InvalidAccessKeyId", message: "The Access Key Id you provided does not exist in our records." };
  const scope = scopeParts.join("/");
  const names = signedHeaders.split(";").filter(Boolean);
  const canonicalRequest = [
    method,
    path,
    canonicalQuery(rawQuery, excluded),
    names.map((name) => `${name}:${headerValue(headers, name)}\n`).join(""),
    signedHeaders,
    payloadHash,
  ].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonicalRequest)].join("\n");
  const [date, region, service, terminator] = scopeParts;
  let key: Buffer = hmac(`AWS4${secretAccessKey}`, date ?? "");
  for (const part of [region ?? "", service ?? "", terminator ?? ""]) key = hmac(key, part);
  const expected = createHmac("sha256", key).update(stringToSign).digest("hex");
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected)))
    return { ok: false, code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided. Check your key and signing method." };
  return { ok: true, accessKeyId };
}
