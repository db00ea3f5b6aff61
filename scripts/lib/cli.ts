// What every CLI entry point under scripts/ shares: argument parsing with --help,
// and one top-level handler that turns an expected failure into a single line and an exit code.
import { createInterface } from "node:readline/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** An expected failure: the message is one line that says what to do. Never printed with a stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "UserError";
  }
}

/** Bad command-line usage: exit code 2, like most Unix tools. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses argv against `options` (plus --help). Unknown flags and missing values become a UsageError
 * naming the script, so `npm run x -- --bogus` answers with one line.
 */
export function parseCli<O extends Options>(script: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals, strict: true });
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UsageError(`${reason} (see: npm run ${script} -- --help)`);
  }
}

/** Asks a yes/no question on the terminal (stderr, so stdout stays clean for --json); true only for y or yes. */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(question);
  rl.close();
  return /^y(es)?$/i.test(answer.trim());
}

/**
 * Runs a CLI's main function: prints a UserError as `<script>: <message>` and exits with its code;
 * anything else is a bug, printed in full.
 */
export async function runCli(script: string, main: () => Promise<number | void>): Promise<void> {
  try {
    const code = await main();
    process.exitCode = code ?? 0;
  } catch (error) {
    if (error instanceof UserError) {
      process.stderr.write(`${script}: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`${script}: unexpected error, please report it:\n`);
      console.error(error);
      process.exitCode = 70;
    }
  }
}
