// Password hashes for the proxies' user files. bootstrap writes them; the proxies only ever see hashes.
import bcrypt from "bcryptjs";
import { createHash, randomBytes } from "node:crypto";

/** bcrypt cost for Caddy's basic_auth. Caddy caches a verified hash, so the cost is paid per first login and per wrong password. */
export const BCRYPT_COST = 10;

/** A bcrypt hash (`$2b$…`) Caddy's basic_auth accepts as is. */
export function caddyHash(password: string, cost = BCRYPT_COST): string {
  return bcrypt.hashSync(password, cost);
}

/** A hash for nginx's auth_basic_user_file: salted SHA-1 (`{SSHA}`), which nginx verifies itself on every request. */
export function nginxHash(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash("sha1").update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`;
}
