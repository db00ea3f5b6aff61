// npm run bootstrap -- [options]: .env and secrets/ for a new installation. See --help; the work is in scripts/lib/bootstrap.ts.
import { resolve } from "node:path";
import { bootstrap, DEFAULT_USER, type BootstrapResult } from "./lib/bootstrap.ts";
import { parseCli, runCli, UsageError, UserError } from "./lib/cli.ts";
import { MIN_GUESSES_LOG10, MIN_PASSWORD_LENGTH } from "./lib/passwords.ts";
import { passwordFromFile } from "./lib/secrets.ts";

const SCRIPT = "bootstrap";

const HELP = `Usage: npm run bootstrap -- [options]

Creates .env from .env.example (only if .env is missing) and one file per secret in secrets/
(postgres_password, minio_root_password, mlflow_s3_secret_key, proxy_password.<user>, proxy_users.caddy, proxy_users.htpasswd).
An existing file is never overwritten: running it again changes nothing. proxy_users.caddy_guard (Caddy's check that
a request names a known user, and for a generated password starts with its first 3 characters) is rebuilt from
proxy_users.caddy and the generated password files on every run.

Options:
  --user NAME         proxy login user (default ${DEFAULT_USER}; 1-64 of a-z 0-9 . _ -); a new user is added
  --domain HOST       DOMAIN for the new .env (e.g. mlflow.example.com); an existing .env must already agree
  --password-stdin    read the user's proxy password from stdin instead of generating one: at least
                      ${MIN_PASSWORD_LENGTH} characters and hard to guess by the zxcvbn estimate (${"10^" + MIN_GUESSES_LOG10} guesses)
  --rotate NAME       replace one secret: postgres, minio, mlflow-s3, proxy (the --user's password) or proxy:<user>;
                      repeatable. Prints what to restart afterwards.
  --force             allow --rotate postgres on an existing installation (the database needs ALTER ROLE too)
  --json              print a machine-readable summary (never contains a password)
                      A new password is shown once when stdout is a terminal, never when CI is set.
  --dir DIR           project directory holding .env.example (default: current directory)
  -h, --help          show this help

Examples:
  npm run bootstrap
  npm run bootstrap -- --domain mlflow.example.com
  npm run bootstrap -- --user alice              # add a login
  printf '%s' "$PW" | npm run bootstrap -- --user bob --password-stdin
  npm run bootstrap -- --rotate proxy:alice       # new password for alice
`;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new UsageError("--password-stdin reads a piped password, e.g. printf '%s' \"$PW\" | npm run bootstrap -- --password-stdin");
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk));
  const password = passwordFromFile(Buffer.concat(chunks).toString("utf8"));
  if (password === "") throw new UserError("--password-stdin: stdin was empty");
  return password;
}

/** CI systems set CI (GitHub Actions, GitLab, ...: CI=true); some give jobs a terminal, whose output lands in a log. */
function isCi(env: NodeJS.ProcessEnv): boolean {
  return env.CI !== undefined && env.CI !== "";
}

function printSummary(result: BootstrapResult, showPassword: boolean): void {
  const out = (line = "") => process.stdout.write(`${line}\n`);
  for (const { path, action } of result.files) out(`  ${action.padEnd(8)} ${path}`);
  for (const warning of result.warnings) process.stderr.write(`${SCRIPT}: warning: ${warning}\n`);
  out();
  out(`Log in at ${result.url} as ${result.user}; the password is in ${result.passwordFile}`);
  if (showPassword && result.newPassword !== undefined) out(`Password (shown only this once): ${result.newPassword}`);
  for (const step of result.nextSteps) out(`Next: ${step}`);
}

await runCli(SCRIPT, async () => {
  const { values } = parseCli(SCRIPT, process.argv.slice(2), {
    user: { type: "string" },
    domain: { type: "string" },
    "password-stdin": { type: "boolean" },
    rotate: { type: "string", multiple: true },
    force: { type: "boolean" },
    json: { type: "boolean" },
    dir: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const password = values["password-stdin"] ? await readStdin() : undefined;
  const result = bootstrap({
    dir: resolve(values.dir ?? "."),
    user: values.user,
    domain: values.domain,
    rotate: values.rotate,
    force: values.force,
    password,
  });
  if (values.json) {
    const { newPassword: _secret, ...summary } = result;
    const by = (action: string) => result.files.filter((file) => file.action === action).map((file) => file.path);
    const json = { ...summary, created: by("created"), kept: by("kept"), updated: by("updated"), rotated: by("rotated") };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    printSummary(result, process.stdout.isTTY === true && !isCi(process.env));
  }
  return 0;
});
