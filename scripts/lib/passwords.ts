// Passwords bootstrap generates, and the strength check for one a user supplies (--password-stdin).
import { randomBytes } from "node:crypto";

/** Random bytes per generated password: 30 bytes = 240 bits = 40 base64url characters. */
const GENERATED_BYTES = 30;

/**
 * A random password from node:crypto in the URL-safe alphabet [A-Za-z0-9_-] (base64url, no padding),
 * so it can sit in a postgresql:// URI, an env file or a shell word without quoting. 40 characters.
 */
export function generatePassword(): string {
  return randomBytes(GENERATED_BYTES).toString("base64url");
}

export const MIN_PASSWORD_LENGTH = 16;
const MIN_DISTINCT_CHARS = 8;
/** bcrypt ignores everything after 72 bytes, so a longer password would be silently shortened for Caddy. */
const MAX_PASSWORD_BYTES = 72;

/** What a supplied password must satisfy, in one sentence for error messages. */
export const PASSWORD_RULES =
  `at least ${MIN_PASSWORD_LENGTH} characters (at most ${MAX_PASSWORD_BYTES} bytes), at least ${MIN_DISTINCT_CHARS} different characters, ` +
  "at least two kinds of lower-case letters, upper-case letters, digits and symbols, no control characters, and not a common password";

/**
 * Words that make a password common no matter what digits or symbols surround them or how often they repeat
 * ("Password1234567!", "qwertyqwertyqwerty"). Compared against the password's letters, lower-cased.
 */
const COMMON_WORDS = [
  "password", "passw", "passwd", "pass", "qwerty", "qwertz", "azerty", "asdf", "zxcv", "abc", "abcdef", "abcdefgh",
  "letmein", "welcome", "admin", "administrator", "root", "login", "secret", "changeme", "default", "iloveyou",
  "monkey", "dragon", "master", "sunshine", "princess", "football", "baseball", "shadow", "superman", "trustno",
  "mlflow", "minio", "postgres", "test", "user", "guest", "hello",
];

/** Whole passwords (lower-cased) from breach lists that pass the length and variety rules. */
const COMMON_PASSWORDS = new Set([
  "correcthorsebatterystaple", "correct horse battery staple", "1q2w3e4r5t6y7u8i", "1qaz2wsx3edc4rfv",
  "qwertyuiopasdfgh", "qwertyuiopasdfghjkl", "q1w2e3r4t5y6u7i8", "zaq12wsxcde34rfv", "1234qwerasdfzxcv",
  "a1b2c3d4e5f6g7h8", "0123456789abcdef", "abcdefghijklmnop", "!qaz2wsx#edc4rfv", "1q2w3e4r5t6y7u8i9o0p",
  "1234567890!@#$%^", "!@#$%^&*()1234567890", "1234567890-=!@#$%^&*()_+",
]);

/** Why `password` is refused (one reason per entry), or an empty list when it is acceptable. */
export function passwordProblems(password: string): string[] {
  const problems: string[] = [];
  const chars = [...password];
  if (chars.length < MIN_PASSWORD_LENGTH) problems.push(`it has ${chars.length} characters, needs at least ${MIN_PASSWORD_LENGTH}`);
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) problems.push(`it is longer than ${MAX_PASSWORD_BYTES} bytes (bcrypt would ignore the rest)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(password)) problems.push("it contains control characters (tab, newline, ...)");
  if (new Set(chars).size < MIN_DISTINCT_CHARS) problems.push(`it has fewer than ${MIN_DISTINCT_CHARS} different characters`);
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((kind) => kind.test(password)).length;
  if (kinds < 2) problems.push("it uses only one kind of character (lower-case, upper-case, digits or symbols)");
  if (isCommon(password)) problems.push("it is a common password or built from a common word");
  return problems;
}

function isCommon(password: string): boolean {
  const lower = password.toLowerCase();
  if (COMMON_PASSWORDS.has(lower)) return true;
  const letters = lower.replace(/[^a-z]/g, "");
  if (letters === "") return false; // digits and symbols only: the variety rules decide
  // The letters are one common word, repeated ("passwordpassword", "Admin!Admin!Admin!").
  return COMMON_WORDS.some((word) => letters.length % word.length === 0 && word.repeat(letters.length / word.length) === letters);
}
