// Password hashes for the proxies' user files. bootstrap writes them; the proxies only ever see hashes, never a
// plaintext password. The cost of a hash follows the strength of its password: a wrong password must be cheap for the
// proxy, and a leaked users file must still be expensive to crack. Figures: README "Benchmarks" (npm run bench).
import bcrypt from "bcryptjs";
import { createHash, randomBytes } from "node:crypto";

/** bcrypt's lowest cost (Go's bcrypt.MinCost, which Caddy uses, is 4 too). */
export const MIN_BCRYPT_COST = 4;
const MAX_BCRYPT_COST = 12;

/**
 * log2 of the work (guesses x 2^cost) a leaked hash must cost an attacker. 2^50 is about 5 years of one current GPU
 * (order of 2*10^5 bcrypt-cost-5 hashes per second: hashcat's published figures, not measured here) for the estimated
 * number of guesses. A password with 10^12 guesses (the weakest bootstrap accepts) needs cost 11, one with 10^15 or
 * more needs only the minimum.
 */
const CRACK_WORK_LOG2 = 50;

/**
 * At or above this many guesses (log10; ~100 bits) brute force is hopeless whatever the hash: nginx gets the fast
 * {SSHA} line then. Generated passwords (240 bits) always qualify.
 */
export const FAST_HASH_MIN_GUESSES_LOG10 = 30;

/**
 * The bcrypt cost for a password needing 10^guessesLog10 guesses.
 *
 * Caddy verifies with bcrypt and caches the result per (hash, password) in memory, so a valid user pays it once after
 * each (re)start; every NEW wrong password pays it in full. Through caddy 2.6.2 on the 2-core development machine
 * (median ms of one request): cost 4 ~1-3, cost 10 ~60-130, cost 11 ~120-250. At cost 4 a burst of 200 wrong passwords
 * costs Caddy a fraction of a CPU-second, at cost 11 about 30 (issue 9). A generated password gets cost 4; a chosen
 * one the cost that keeps guesses x 2^cost >= 2^CRACK_WORK_LOG2.
 */
export function bcryptCostFor(guessesLog10: number): number {
  const needed = Math.ceil(CRACK_WORK_LOG2 - guessesLog10 * Math.log2(10));
  return Math.min(MAX_BCRYPT_COST, Math.max(MIN_BCRYPT_COST, needed));
}

/** A bcrypt hash (`$2b$…`) Caddy's basic_auth accepts as is (a `$` in it must be `$$` only inside compose YAML). */
export function caddyHash(password: string, cost = MIN_BCRYPT_COST): string {
  return bcrypt.hashSync(password, cost);
}

/**
 * Salted SHA-1 in the LDAP `{SSHA}` form, base64(SHA1(password + salt) + salt), with a 16-byte random salt, which
 * nginx's auth_basic_user_file implements itself (on the Debian and the Alpine image alike, no libc crypt() needed).
 *
 * Why: nginx has no credential cache; it checks the hash on EVERY request. Authenticated throughput through nginx per
 * scheme, relative to unauthenticated GET /health through the same nginx (`npm run bench`, several runs):
 *   {SSHA} 90-110% (no measurable cost)   $apr1$ 32-50%   $5$ sha256-crypt (5000 rounds) 5-8%
 *   $5$ with rounds=1000 ~26% (ab, one run)   bcrypt cost 4 10-16%   bcrypt cost 10 ~0% (12-29 req/s)
 * A fast hash is only safe for a password nobody can brute-force: see htpasswdHash.
 */
export function sshaHash(password: string): string {
  const salt = randomBytes(16);
  const digest = createHash("sha1").update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`;
}

/**
 * The nginx users file hash for a password needing 10^guessesLog10 guesses: {SSHA} when brute force is hopeless
 * anyway (generated passwords), else bcrypt at the same cost as Caddy's, so a leaked htpasswd reveals no more than a
 * leaked Caddy file. nginx passes `$2b$` to libc crypt(): musl (the nginx:*-alpine image) and libxcrypt (Debian 12,
 * where the tests run) both implement it. The price: nginx checks it on every request, so a user with a chosen
 * password pays the bcrypt cost per request on the nginx variant (README "The proxy").
 */
export function htpasswdHash(password: string, guessesLog10: number): string {
  return guessesLog10 >= FAST_HASH_MIN_GUESSES_LOG10 ? sshaHash(password) : bcrypt.hashSync(password, bcryptCostFor(guessesLog10));
}

/** Both proxies' hashes for one password. */
export function proxyHashes(password: string, guessesLog10: number): { caddy: string; htpasswd: string } {
  return { caddy: caddyHash(password, bcryptCostFor(guessesLog10)), htpasswd: htpasswdHash(password, guessesLog10) };
}
