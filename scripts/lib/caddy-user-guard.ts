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
//
// Generated passwords: for a user whose password bootstrap generated, the guard also requires the base64 of the
// password's first GUARD_PASSWORD_CHARS characters, so a wrong password is answered as cheaply as an unknown user
// (a bcrypt-4 check costs Caddy ~1 ms of CPU, the regex ~0.3-0.5 ms for the whole request: README "Benchmarks").
// What that reveals: the guard file is a 0600 secret like the users file (proxy_users.caddy_guard, mounted only into
// the proxy); a leak shows 3 characters = 18 bits of a 240-bit password, leaving 222 bits. A timing attacker could
// learn the same 18 bits online with ~2^18 requests (the 401 is identical; only its latency differs) and is left with
// 2^222 guesses: nothing usable. Chosen passwords never get a character in the file (generatedPasswordPrefix).

import bcrypt from "bcryptjs";
import { FAST_HASH_MIN_GUESSES_LOG10, MIN_BCRYPT_COST } from "./password-hashes.ts";
import { estimateGuessesLog10 } from "./passwords.ts";

/**
 * Characters of a generated password the guard requires: 3 base64url characters = 18 bits, within the 12-24 bits
 * that keep a timing attacker from learning anything usable (see above) while a random wrong password passes the
 * guard once in 2^18. caddy/docker-entrypoint.sh uses the same number.
 */
export const GUARD_PASSWORD_CHARS = 3;

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
 * The regex (no anchors) that the base64 of "<user>:<passwordPrefix><rest>" always starts with, whatever the rest,
 * and no other user's does: the fixed characters, then a class for the one character that mixes the last known byte
 * with the rest's first bits. `passwordPrefix` is "" but for generated passwords (generatedPasswordPrefix).
 */
export function userPrefixPattern(user: string, passwordPrefix = ""): string {
  if (user === "" || user.includes(":")) throw new Error(`not a basic-auth user name: ${JSON.stringify(user)}`);
  const prefix = Buffer.from(`${user}:${passwordPrefix}`);
  const fixed = Math.floor((prefix.length * 8) / 6);
  const lo = Buffer.concat([prefix, Buffer.alloc(3, 0x00)]).toString("base64");
  const hi = Buffer.concat([prefix, Buffer.alloc(3, 0xff)]).toString("base64");
  // "+" (a byte such as ">" or "~" ends in 111110) is a quantifier in a regex: "[+]" (no backslash: CEL would read it).
  const head = lo.slice(0, fixed).replace(/\+/g, "[+]");
  // A known part of a multiple of 3 bytes ends on a character boundary: the rest starts a fresh character.
  if (prefix.length % 3 === 0) return head;
  return head + charClass(ALPHABET.indexOf(lo[fixed]), ALPHABET.indexOf(hi[fixed]));
}

/**
 * The whole Authorization value a request of a known user can have (scheme case-insensitive, as Go's parser);
 * `passwordPrefixes` maps a user to the start its password must have (generated passwords only).
 */
export function authorizationPattern(users: string[], passwordPrefixes: ReadonlyMap<string, string> = new Map()): string {
  if (users.length === 0) throw new Error("no users: the guard would lock everyone out");
  const alternatives = [...new Set(users)].map((user) => userPrefixPattern(user, passwordPrefixes.get(user) ?? "")).join("|");
  return `^[Bb][Aa][Ss][Ii][Cc] (?:${alternatives})[A-Za-z0-9+/]*=*$`;
}

/** The `<user> <hash>` lines of a Caddy users file (blank lines and # comments skipped). */
export function caddyUserLines(text: string): { user: string; hash: string }[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [user, hash = ""] = line.split(/\s+/);
      return { user, hash };
    });
}

/** The user names of a Caddy users file. */
export function usersOfCaddyFile(text: string): string[] {
  return caddyUserLines(text).map((line) => line.user);
}

/** The shape of a password bootstrap generates (generatePassword: 30 random bytes as base64url). */
const GENERATED_SHAPE = /^[A-Za-z0-9_-]{40}$/;

/**
 * The first GUARD_PASSWORD_CHARS characters of `password` when the guard may require them, else "": only when
 * `password` (the content of secrets/proxy_password.<user>, undefined when the file is gone) has the generated shape,
 * brute force is hopeless by the zxcvbn estimate (the rule that gives nginx the fast {SSHA} hash), the user's Caddy
 * hash has bcrypt's lowest cost (bootstrap's mark of such a password: bcryptCostFor) and that hash matches it (a
 * password file out of step with the users file must not lock its user out). A chosen password, with its higher cost,
 * never gets a character into the guard.
 */
export function generatedPasswordPrefix(password: string | undefined, caddyHash: string): string {
  if (password === undefined || !GENERATED_SHAPE.test(password)) return "";
  const cost = /^\$2[aby]?\$(\d\d)\$/.exec(caddyHash);
  if (cost === null || Number(cost[1]) !== MIN_BCRYPT_COST) return "";
  if (estimateGuessesLog10(password).guessesLog10 < FAST_HASH_MIN_GUESSES_LOG10) return "";
  if (!bcrypt.compareSync(password, caddyHash)) return "";
  return password.slice(0, GUARD_PASSWORD_CHARS);
}

/**
 * The password prefixes of a users file's generated-password users; `readPassword(user)` gives the content of
 * secrets/proxy_password.<user>, or undefined when it is missing.
 */
export function guardPasswordPrefixes(usersFileText: string, readPassword: (user: string) => string | undefined): Map<string, string> {
  const prefixes = new Map<string, string>();
  for (const { user, hash } of caddyUserLines(usersFileText)) {
    const prefix = generatedPasswordPrefix(readPassword(user), hash);
    if (prefix !== "") prefixes.set(user, prefix);
  }
  return prefixes;
}

/**
 * The guard file for a Caddy users file: a Caddyfile snippet that defines GUARD_MATCHER, matching every request that
 * is NOT `Basic` + a known user's prefix (no header, another scheme, an unknown user, two headers, and for a
 * generated-password user a password with another start: guardPasswordPrefixes).
 */
export function caddyGuardFile(usersFileText: string, passwordPrefixes: ReadonlyMap<string, string> = new Map()): string {
  const pattern = authorizationPattern(usersOfCaddyFile(usersFileText), passwordPrefixes);
  return (
    "# Written by npm run bootstrap (and caddy/docker-entrypoint.sh) from proxy_users.caddy: do not edit, it is rebuilt.\n" +
    "# Requests that do not name a known user get 401 before basicauth (scripts/lib/caddy-user-guard.ts).\n" +
    `${GUARD_MATCHER} expression \`!{http.request.header.Authorization}.matches("${pattern}")\`\n`
  );
}
