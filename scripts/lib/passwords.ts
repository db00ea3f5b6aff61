// Passwords bootstrap generates, and the strength estimate for one a user supplies (--password-stdin).
import { ZxcvbnFactory } from "@zxcvbn-ts/core";
import * as zxcvbnCommon from "@zxcvbn-ts/language-common";
import { randomBytes } from "node:crypto";

/** Random bytes per generated password: 30 bytes = 240 bits = 40 base64url characters. */
const GENERATED_BYTES = 30;
/** log10 of the guesses a generated password needs: 2^240. */
export const GENERATED_GUESSES_LOG10 = GENERATED_BYTES * 8 * Math.log10(2);

/**
 * A random password from node:crypto in the URL-safe alphabet [A-Za-z0-9_-] (base64url, no padding),
 * so it can sit in a postgresql:// URI, an env file or a shell word without quoting. 40 characters.
 */
export function generatePassword(): string {
  return randomBytes(GENERATED_BYTES).toString("base64url");
}

export const MIN_PASSWORD_LENGTH = 16;
/** bcrypt ignores everything after 72 bytes, so a longer password would be silently shortened for Caddy. */
const MAX_PASSWORD_BYTES = 72;
/**
 * Fewest guesses (log10) a supplied password may need by the zxcvbn estimate. 10^12 takes an attacker holding a leaked
 * users file about 5 GPU-years at the bcrypt cost such a password gets (bcryptCostFor in password-hashes.ts); online,
 * through the proxy, it is out of reach. `Summer2024!Summer` scores 10^10.2, `December2025!!!!` 10^8.
 */
export const MIN_GUESSES_LOG10 = 12;

/** What a supplied password must satisfy, in one sentence for error messages. */
export const PASSWORD_RULES =
  `at least ${MIN_PASSWORD_LENGTH} characters (at most ${MAX_PASSWORD_BYTES} bytes), no control characters, and hard to guess: ` +
  `at least 10^${MIN_GUESSES_LOG10} guesses by the zxcvbn estimator (a few random words, or a generated password, pass)`;

let estimator: ZxcvbnFactory | undefined;

/**
 * log10 of the guesses an attacker who knows common passwords, names, dates, keyboard patterns, repeats and l33t
 * substitutions needs for `password`: zxcvbn-ts (https://github.com/zxcvbn-ts/zxcvbn) with its common-password and
 * name lists. `context` (user name, domain, ...) counts as known to the attacker.
 */
export function estimateGuessesLog10(password: string, context: string[] = []): { guessesLog10: number; pattern?: string } {
  estimator ??= new ZxcvbnFactory({ dictionary: { ...zxcvbnCommon.dictionary }, graphs: zxcvbnCommon.adjacencyGraphs });
  const result = estimator.check(password, ["mlflow", "minio", "postgres", ...context]);
  // Without translations the warning is a key such as "extendedRepeat": make it words.
  const pattern = result.feedback.warning?.replace(/([A-Z])/g, " $1").toLowerCase();
  return { guessesLog10: result.guessesLog10, pattern: pattern || undefined };
}

/** Why `password` is refused (one reason per entry), or an empty list when it is acceptable. */
export function passwordProblems(password: string, context: string[] = []): string[] {
  const problems: string[] = [];
  const chars = [...password];
  if (chars.length < MIN_PASSWORD_LENGTH) problems.push(`it has ${chars.length} characters, needs at least ${MIN_PASSWORD_LENGTH}`);
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) problems.push(`it is longer than ${MAX_PASSWORD_BYTES} bytes (bcrypt would ignore the rest)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(password)) problems.push("it contains control characters (tab, newline, ...)");
  if (problems.length > 0) return problems;
  const { guessesLog10, pattern } = estimateGuessesLog10(password, context);
  if (guessesLog10 < MIN_GUESSES_LOG10) {
    problems.push(`it is easy to guess: about 10^${guessesLog10.toFixed(0)} guesses by the zxcvbn estimate, needs 10^${MIN_GUESSES_LOG10}${pattern ? ` (${pattern})` : ""}`);
  }
  return problems;
}
