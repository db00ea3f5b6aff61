// Reading and editing .env files. Reading uses dotenv's parser (the same rules as Docker Compose for our simple
// values); editing works line by line so comments, blank lines and the order of the file survive.
import { parse } from "dotenv";

export function parseEnv(text: string): Record<string, string> {
  return parse(text);
}

/** Matches an active (not commented-out) assignment of `key`, with optional `export `. */
function assignmentPattern(key: string): RegExp {
  return new RegExp(`^\\s*(?:export\\s+)?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*=`);
}

/** `value` as it should appear after `KEY=`: bare when it is plain, single-quoted otherwise. */
export function formatEnvValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error("an .env value cannot contain a line break");
  if (/^[A-Za-z0-9_./:@+,-]*$/.test(value)) return value;
  if (!value.includes("'")) return `'${value}'`;
  if (!/["\\$`]/.test(value)) return `"${value}"`;
  throw new Error(`cannot write ${JSON.stringify(value)} to an .env file unambiguously`);
}

/**
 * Returns `text` with `key` set to `value`: the first active `KEY=` line is replaced in place (its comment lines
 * above stay), later active duplicates are dropped, and the key is appended when absent. Running it twice gives
 * the same text as running it once.
 */
export function setEnvValue(text: string, key: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`not an environment variable name: ${key}`);
  const line = `${key}=${formatEnvValue(value)}`;
  const pattern = assignmentPattern(key);
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text.split(/\r?\n/);
  let found = false;
  const out: string[] = [];
  for (const current of lines) {
    if (!pattern.test(current)) out.push(current);
    else if (!found) {
      out.push(line);
      found = true;
    } // else: a duplicate assignment, dropped
  }
  if (!found) {
    if (out.length > 0 && out[out.length - 1] === "") out.splice(out.length - 1, 0, line);
    else out.push(line);
  }
  let result = out.join(eol);
  if (!found && !text.endsWith("\n") && text !== "") result += eol; // appended to a file without a final newline
  return result;
}

/** Keys assigned in `example` that `env` does not assign (settings added to .env.example after .env was made). */
export function missingKeys(example: string, env: string): string[] {
  const have = parseEnv(env);
  return Object.keys(parseEnv(example)).filter((key) => !(key in have));
}
