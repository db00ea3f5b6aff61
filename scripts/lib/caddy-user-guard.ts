// The Caddy user guard: a request matcher that lets only `Authorization: Basic <base64 of "<known user>:...">` reach
// Caddy's basicauth, so a request naming an unknown user is answered 401 without any bcrypt.
//
// Why: basicauth checks the password of an UNKNOWN user against a built-in dummy hash of cost 14 (caddy
// modules/caddyhttp/caddyauth/hashes.go, BcryptHash.FakeHash: "$2a$14$X3ulqf/...", used by Authenticate in
// basicauth.go "to avoid side-channels that leak existence"): about one CPU-second per request, whatever cost our own
// hashes have. 200 such requests would cost the proxy minutes of CPU. The guard answers them in microseconds, at the
// price of telling a patient attacker, by timing, that a user name does not exist (README "Security").
//
// How: base64 of "<user>:" followed by any password bytes starts with fixed characters, floor(8n/6) of them for the
// n bytes of "<user>:", followed by one character whose high bits are fixed and low bits come from the password: a
// contiguous range of the alphabet (for "mlflow:" → `bWxmbG93O[g-v]`). Go's Request.BasicAuth decodes strictly
// (StdEncoding) and splits at the first ":", so a header the regex accepts either decodes to a known user name or is
// rejected by basicauth before any hash. caddy/docker-entrypoint.sh builds the very same file in sh/awk.
//
// The matcher reads the header through the placeholder {http.request.header.Authorization}, which joins repeated
// headers with "," (caddy modules/caddyhttp/replacer.go): a second Authorization header makes the value fail the
// anchored regex, so "unknown user first, known user second" cannot slip past (Go's BasicAuth reads the first).

/** The base64 alphabet in value order (RFC 4648, what Go's StdEncoding uses). */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Runs of the alphabet that are also contiguous in ASCII, so one regex range can cover a part of each. */
const SEGMENTS: [number, number][] = [
  [0, 25],
  [26, 51],
  [52, 61],
  [62, 62],
  [63, 63],
];

/** The name of the matcher the guard file defines; caddy/Caddyfile uses it. */
export const GUARD_MATCHER = "@proxy_unknown_user";

/** A regex character class with every base64 character whose value is in [lo, hi]. */
function charClass(lo: number, hi: number): string {
  let out = "";
  for (const [start, end] of SEGMENTS) {
    const from = Math.max(lo, start);
    const to = Math.min(hi, end);
    if (from > to) continue;
    out += from === to ? ALPHABET[from] : `${ALPHABET[from]}-${ALPHABET[to]}`;
  }
  return `[${out}]`;
}

/**
 * The regex (no anchors) that the base64 of "<user>:<any password>" always starts with, and no other user's does:
 * the fixed characters, then a class for the one character that mixes the ":" with the password's first bits.
 */
export function userPrefixPattern(user: string): string {
  if (user === "" || user.includes(":")) throw new Error(`not a basic-auth user name: ${JSON.stringify(user)}`);
  const prefix = Buffer.from(`${user}:`);
  const fixed = Math.floor((prefix.length * 8) / 6);
  const lo = Buffer.concat([prefix, Buffer.alloc(3, 0x00)]).toString("base64");
  const hi = Buffer.concat([prefix, Buffer.alloc(3, 0xff)]).toString("base64");
  // "<user>:" of a multiple of 3 bytes ends on a character boundary: the password starts a fresh character.
  if (prefix.length % 3 === 0) return lo.slice(0, fixed);
  return lo.slice(0, fixed) + charClass(ALPHABET.indexOf(lo[fixed]), ALPHABET.indexOf(hi[fixed]));
}

/** The whole Authorization value a request of a known user can have (scheme case-insensitive, as Go's parser). */
export function authorizationPattern(users: string[]): string {
  if (users.length === 0) throw new Error("no users: the guard would lock everyone out");
  const alternatives = [...new Set(users)].map(userPrefixPattern).join("|");
  return `^[Bb][Aa][Ss][Ii][Cc] (?:${alternatives})[A-Za-z0-9+/]*=*$`;
}

/** The user names of a Caddy users file (`<user> <hash>` lines; blank lines and # comments skipped). */
export function usersOfCaddyFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.split(/\s+/)[0]);
}

/**
 * The guard file for a Caddy users file: a Caddyfile snippet that defines GUARD_MATCHER, matching every request that
 * is NOT `Basic` + a known user's prefix (no header, another scheme, an unknown user, two headers).
 */
export function caddyGuardFile(usersFileText: string): string {
  const pattern = authorizationPattern(usersOfCaddyFile(usersFileText));
  return (
    "# Written by npm run bootstrap (and caddy/docker-entrypoint.sh) from proxy_users.caddy: do not edit, it is rebuilt.\n" +
    "# Requests that do not name a known user get 401 before basicauth (scripts/lib/caddy-user-guard.ts).\n" +
    `${GUARD_MATCHER} expression \`!{http.request.header.Authorization}.matches("${pattern}")\`\n`
  );
}
