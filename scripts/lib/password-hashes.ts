// Password hashes for the proxies' user files. bootstrap writes them; the proxies only ever see hashes, never a
// plaintext password. Figures below were measured on the 2-core development machine with `npm run bench` and the
// proxy tests (caddy 2.6.2, nginx 1.22.1); re-measure there before changing a choice.
import bcrypt from "bcryptjs";
import { createHash, randomBytes } from "node:crypto";

/**
 * bcrypt cost of Caddy's basic_auth hashes.
 *
 * Caddy verifies a password with bcrypt once and then caches the result (its hash_cache), so the cost is paid on a
 * user's first request after each start or reload, and on EVERY wrong password (wrong ones are not cached).
 * Measured through caddy 2.6.2 with `npm run bench` (one request, median ms; runs on the shared 2-core machine):
 *   cost 10 →  61-134 ms    cost 11 → 120-252 ms    cost 12 → 237-270 ms    a cached login: 2-5 ms in total
 * 11 keeps the first login imperceptible and doubles an offline attacker's work over the usual minimum of 10, while
 * each wrong guess costs the server 0.13 s of CPU instead of 0.26 s at 12. Bootstrap's passwords are long and random,
 * so the cost matters only for the hash file leaking with a weak user-chosen password (bootstrap refuses those).
 */
export const BCRYPT_COST = 11;

/** A bcrypt hash (`$2b$…`) Caddy's basic_auth accepts as is (a `$` in it must be `$$` only inside compose YAML). */
export function caddyHash(password: string, cost = BCRYPT_COST): string {
  return bcrypt.hashSync(password, cost);
}

/**
 * A hash for nginx's auth_basic_user_file: salted SHA-1 in the LDAP `{SSHA}` form,
 * base64(SHA1(password + salt) + salt), with a 16-byte random salt.
 *
 * Why this scheme: nginx has no credential cache; it checks the hash on EVERY request. Authenticated throughput through
 * nginx per scheme, relative to unauthenticated GET /health through the same nginx (`npm run bench`, several runs):
 *   {SSHA} 90-110% (no measurable cost)   $apr1$ 32-50%   $5$ sha256-crypt (5000 rounds) 5-8%
 *   $5$ with rounds=1000 ~26% (ab, one run)   bcrypt cost 4 10-16%   bcrypt cost 10 ~0% (12-29 req/s)
 * Only {SSHA} keeps authenticated throughput at >= 50% of unauthenticated with margin. A fast hash is safe here
 * because bootstrap generates long random passwords (>= 128 bits: nothing to brute-force, fast hash or not) and
 * refuses weak user-supplied ones; SHA-1's collision weakness does not matter for a salted password hash (that
 * would need a preimage). nginx implements {SSHA} itself, so it works on the Debian and the Alpine nginx images alike
 * (no dependence on which libc crypt() schemes the image has). test/proxy-*.test.ts prove a real nginx accepts it.
 */
export function nginxHash(password: string): string {
  const salt = randomBytes(16);
  const digest = createHash("sha1").update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`;
}
