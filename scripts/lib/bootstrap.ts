// `npm run bootstrap`: creates .env from .env.example and the secrets in secrets/, once. An existing file is never
// regenerated (Postgres reads its password only on first init: a new one would lock MLflow out of its database);
// --rotate is the one explicit way to replace a secret. All checks run before the first write.
import bcrypt from "bcryptjs";
import { statSync } from "node:fs";
import { join } from "node:path";
import { caddyGuardFile, guardPasswordPrefixes } from "./caddy-user-guard.ts";
import { UsageError, UserError } from "./cli.ts";
import { missingKeys, parseEnv, setEnvValue } from "./envfile.ts";
import { withFileLock } from "./file-lock.ts";
import { proxyHashes } from "./password-hashes.ts";
import { estimateGuessesLog10, generatePassword, GENERATED_GUESSES_LOG10, passwordProblems, PASSWORD_RULES } from "./passwords.ts";
import { stackUrl } from "./stack.ts";
import {
  createFileExclusive,
  ensurePrivateDir,
  findUserHash,
  formatUserLine,
  passwordFromFile,
  readIfExists,
  removeStaleTemps,
  replaceFile,
  SECRET_FILES,
  SECRET_FILE_MODE,
  setUserLine,
  tightenMode,
  type UsersFormat,
} from "./secrets.ts";

export const DEFAULT_USER = "mlflow";
const ENV_FILE_MODE = 0o644; // .env holds no secrets (they live in secrets/)

export type RotateTarget = "postgres" | "minio" | "mlflow-s3" | "proxy";
export type FileAction = "created" | "kept" | "updated" | "rotated";

export interface BootstrapOptions {
  /** Project directory: holds .env.example; .env and secrets/ are written here. */
  dir: string;
  /** Proxy login user (default `mlflow`). */
  user?: string;
  /** DOMAIN for a new .env; must match an existing .env. */
  domain?: string;
  /** Secrets to replace: `postgres`, `minio`, `mlflow-s3`, `proxy` (the user's proxy password) or `proxy:<user>`. */
  rotate?: string[];
  /** Allows rotating the Postgres password of an existing installation. */
  force?: boolean;
  /** The proxy user's password, instead of a generated one (from --password-stdin). */
  password?: string;
}

export interface BootstrapResult {
  user: string;
  url: string;
  /** Relative to the project directory. */
  passwordFile: string;
  files: { path: string; action: FileAction }[];
  /** Things the user should know (hash does not match the password file, permissions tightened, ...). */
  warnings: string[];
  /** Commands to run now, e.g. after a rotation. */
  nextSteps: string[];
  /** The proxy password when this run generated it. Never serialise this; print it only to a terminal. */
  newPassword?: string;
}

/** What a proxy user name may be (it names a file: secrets/proxy_password.<user>). */
const USER_NAME = /^[a-z0-9._-]{1,64}$/;

export function validateUser(user: string): string {
  if (!USER_NAME.test(user)) {
    throw new UsageError(`invalid user name ${JSON.stringify(user)}: use 1-64 characters of a-z 0-9 . _ -`);
  }
  return user;
}

export function validateDomain(domain: string): string {
  const labels = domain.split(".");
  const ok = domain.length <= 253 && labels.every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
  if (!ok) {
    throw new UsageError(`invalid domain ${JSON.stringify(domain)}: give a lower-case host name such as mlflow.example.com (no scheme, port or path)`);
  }
  return domain;
}

/**
 * Parses --rotate values. `proxy:<user>` names the user too (it must agree with --user when both are given);
 * plain user names are not accepted, so a user called `postgres` cannot be confused with the database.
 */
export function parseRotate(names: string[], user?: string): { targets: Set<RotateTarget>; user?: string } {
  const targets = new Set<RotateTarget>();
  let proxyUser = user;
  for (const name of names) {
    if (name === "postgres" || name === "minio" || name === "mlflow-s3" || name === "proxy") {
      targets.add(name);
      continue;
    }
    const match = /^proxy:(.*)$/.exec(name);
    if (!match) throw new UsageError(`cannot rotate ${JSON.stringify(name)}: use postgres, minio, mlflow-s3, proxy or proxy:<user>`);
    const named = validateUser(match[1]);
    if (proxyUser !== undefined && proxyUser !== named) {
      throw new UsageError(`--rotate ${name} conflicts with user ${proxyUser}: one proxy user per run`);
    }
    proxyUser = named;
    targets.add("proxy");
  }
  return { targets, user: proxyUser };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The lock file (in the project directory) that serialises concurrent runs; git-ignored, removed after each run. */
export const LOCK_FILE = ".bootstrap.lock";

const USERS_FILES: { format: UsersFormat; path: string; hash: (hashes: { caddy: string; htpasswd: string }) => string }[] = [
  { format: "caddy", path: SECRET_FILES.caddyUsers, hash: (hashes) => hashes.caddy },
  { format: "htpasswd", path: SECRET_FILES.nginxUsers, hash: (hashes) => hashes.htpasswd },
];

/** What this run is asked to do, with every argument validated. */
interface Plan {
  dir: string;
  at: (relative: string) => string;
  user: string;
  domain?: string;
  targets: Set<RotateTarget>;
  passwordFile: string;
  /** The user's chosen password (--password-stdin). */
  password?: string;
  force: boolean;
}

/** What the project directory holds before any write. */
interface Existing {
  example: string;
  env?: string;
  proxyPassword?: string;
}

/** What the run did and what the user should know, filled in step by step. */
interface Report {
  files: BootstrapResult["files"];
  warnings: string[];
  nextSteps: string[];
}

function planRun(options: BootstrapOptions): Plan {
  const { targets, user: rotateUser } = parseRotate(options.rotate ?? [], options.user === undefined ? undefined : validateUser(options.user));
  const user = validateUser(rotateUser ?? DEFAULT_USER);
  const domain = options.domain === undefined ? undefined : validateDomain(options.domain);
  const at = (relative: string) => join(options.dir, relative);
  return { dir: options.dir, at, user, domain, targets, passwordFile: SECRET_FILES.proxyPassword(user), password: options.password, force: options.force ?? false };
}

/**
 * Runs the whole bootstrap. Throws UserError/UsageError before writing anything when a check fails. Concurrent runs
 * on one project (say, several `--user` at once) take turns: a lock file covers the checks and the writes, so no run
 * works from a users file another run is about to replace.
 */
export function bootstrap(options: BootstrapOptions): BootstrapResult {
  const plan = planRun(options);
  if (!isDirectory(plan.dir)) throw new UserError(`${plan.dir} is not a directory — pass the project directory with --dir`);
  return withFileLock(plan.at(LOCK_FILE), () => {
    const existing = preflight(plan);
    const report: Report = { files: [], warnings: [], nextSteps: [] };
    const envText = writeEnv(plan, existing, report);
    prepareSecretsDir(plan, report);
    writePostgresSecret(plan, existing, envText, report);
    writeMinioSecret(plan, report);
    writeMlflowS3Secret(plan, existing, report);
    const proxy = writeProxyPassword(plan, existing, report);
    writeUsersFiles(plan, proxy, report);
    writeCaddyGuard(plan, report);
    if (report.files.some((file) => file.path === SECRET_FILES.postgres && file.action === "created")) {
      report.nextSteps.push("Start the stack: docker compose up -d --wait");
    }
    return { user: plan.user, url: stackUrl(parseEnv(envText)), passwordFile: plan.passwordFile, ...report, newPassword: proxy.newPassword };
  });
}

// ---- Pre-flight: nothing is written until every check passed. ----

function preflight(plan: Plan): Existing {
  const { at } = plan;
  const example = readIfExists(at(".env.example"));
  if (example === undefined) throw new UserError(`no .env.example in ${plan.dir} — run from the repository root or pass --dir`);
  if (isDirectory(at(".env"))) throw new UserError(`${at(".env")} is a directory — remove it, bootstrap creates .env from .env.example`);
  const env = readIfExists(at(".env"));
  checkDomain(plan, env);
  checkPathKinds(plan);
  if (plan.password !== undefined) {
    const problems = passwordProblems(plan.password, passwordContext(plan));
    if (problems.length > 0) throw new UserError(`password refused: ${problems.join("; ")}. Required: ${PASSWORD_RULES}`);
  }
  const proxyPassword = readIfExists(at(plan.passwordFile));
  checkProxyUser(plan, proxyPassword);
  if (plan.targets.has("postgres") && !plan.force && exists(at(SECRET_FILES.postgres))) {
    throw new UserError(
      "Postgres reads its password only when the database is first created, so a rotated secrets/postgres_password " +
        "locks MLflow out until the database gets it too — rerun with --force to rotate and print the ALTER ROLE command to run",
    );
  }
  return { example, env, proxyPassword };
}

function checkDomain(plan: Plan, env: string | undefined): void {
  if (env === undefined || plan.domain === undefined) return;
  const current = parseEnv(env).DOMAIN ?? "";
  if (current !== plan.domain) {
    throw new UserError(`.env already sets DOMAIN=${current}, not ${plan.domain} — edit DOMAIN in .env (bootstrap never rewrites .env)`);
  }
}

function checkPathKinds(plan: Plan): void {
  const { at } = plan;
  if (exists(at("secrets")) && !isDirectory(at("secrets"))) {
    throw new UserError(`${at("secrets")} exists and is not a directory — move it away and run again`);
  }
  for (const path of [SECRET_FILES.postgres, SECRET_FILES.minio, SECRET_FILES.mlflowS3, plan.passwordFile, ...USERS_FILES.map((file) => file.path), SECRET_FILES.caddyGuard]) {
    if (exists(at(path)) && !statSync(at(path)).isFile()) throw new UserError(`${path} exists but is not a regular file — move it away and run again`);
  }
}

function checkProxyUser(plan: Plan, proxyPassword: string | undefined): void {
  const { user, passwordFile } = plan;
  const rotating = plan.targets.has("proxy");
  if (plan.password !== undefined && proxyPassword !== undefined && !rotating) {
    throw new UserError(`${passwordFile} already exists — to replace it: npm run bootstrap -- --rotate proxy:${user} --password-stdin`);
  }
  if (proxyPassword !== undefined || rotating) return;
  for (const { path, format } of USERS_FILES) {
    const text = readIfExists(plan.at(path));
    if (text !== undefined && findUserHash(text, user, format) !== undefined) {
      throw new UserError(`${path} has a line for ${user} but ${passwordFile} is missing — restore it, or set a new password with --rotate proxy:${user}`);
    }
  }
}

/** Words an attacker would try first for this user's password. */
function passwordContext(plan: Plan): string[] {
  return [plan.user, ...(plan.domain ? plan.domain.split(".") : [])];
}

// ---- Writes: each file appears complete or not at all. ----

function writeEnv(plan: Plan, existing: Existing, report: Report): string {
  if (existing.env !== undefined) {
    report.files.push({ path: ".env", action: "kept" });
    const missing = missingKeys(existing.example, existing.env);
    if (missing.length > 0) report.warnings.push(`.env lacks settings that .env.example has: ${missing.join(", ")} — copy them from .env.example`);
    return existing.env;
  }
  const text = plan.domain === undefined ? existing.example : setEnvValue(existing.example, "DOMAIN", plan.domain);
  const created = createFileExclusive(plan.at(".env"), text, ENV_FILE_MODE);
  report.files.push({ path: ".env", action: created ? "created" : "kept" });
  return created ? text : (readIfExists(plan.at(".env")) ?? text);
}

function prepareSecretsDir(plan: Plan, report: Report): void {
  if (ensurePrivateDir(plan.at("secrets")) === "tightened") report.warnings.push("secrets/ was readable by others: its mode is now 0700");
  removeStaleTemps(plan.at("secrets"));
  removeStaleTemps(plan.dir); // a killed run's ..env.tmp-* (no secrets in it, but not git-ignored)
}

/** Creates a secret when missing, replaces it when rotating; returns the password now in the file. */
function ensureSecret(plan: Plan, report: Report, path: string, rotate: boolean, make: () => string): { password: string; action: FileAction } {
  const file = plan.at(path);
  let result: { password: string; action: FileAction } | undefined;
  if (rotate) {
    const password = make();
    replaceFile(file, password, SECRET_FILE_MODE);
    result = { password, action: "rotated" };
  } else if (readIfExists(file) === undefined) {
    const password = make();
    if (createFileExclusive(file, password, SECRET_FILE_MODE)) result = { password, action: "created" };
  }
  if (result === undefined) {
    if (tightenMode(file)) report.warnings.push(`${path} was readable by others: its mode is now 0600`);
    result = { password: passwordFromFile(readIfExists(file) ?? ""), action: "kept" };
  }
  report.files.push({ path, action: result.action });
  return result;
}

function writePostgresSecret(plan: Plan, existing: Existing, envText: string, report: Report): void {
  const rotate = plan.targets.has("postgres") && exists(plan.at(SECRET_FILES.postgres));
  const { action } = ensureSecret(plan, report, SECRET_FILES.postgres, rotate, generatePassword);
  if (action === "created" && existing.env !== undefined) {
    report.warnings.push(
      "secrets/postgres_password was missing and is new, but .env existed: if the database was initialised before, it still " +
        "has the old password — put the old file back, or give the database the new one (README: rotating the Postgres password)",
    );
  }
  if (action !== "rotated") return;
  const env = parseEnv(envText);
  const dbUser = env.POSTGRES_USER || "mlflow";
  const db = env.POSTGRES_DB || "mlflow";
  report.nextSteps.push(
    "The database still has the old Postgres password. Give it the new one (the password travels on stdin, not in a command line):\n" +
      `    docker compose exec -T db psql -v ON_ERROR_STOP=1 -U ${dbUser} -d ${db} <<SQL\n` +
      `    ALTER ROLE CURRENT_USER PASSWORD '$(cat ${SECRET_FILES.postgres})';\n` +
      "    SQL\n" +
      "  then restart MLflow so it reads the new file: docker compose up -d --force-recreate mlflow",
  );
}

function writeMinioSecret(plan: Plan, report: Report): void {
  const rotate = plan.targets.has("minio") && exists(plan.at(SECRET_FILES.minio));
  const { action } = ensureSecret(plan, report, SECRET_FILES.minio, rotate, generatePassword);
  if (action === "rotated") {
    // The S3 server and createbuckets hold the root key (compose.yml); MLflow has its own.
    report.nextSteps.push("The S3 server and createbuckets read the root password when their containers start: docker compose up -d --force-recreate minio createbuckets");
  }
}

/**
 * MLflow's own S3 key: createbuckets (compose.yml) creates the user MLFLOW_S3_ACCESS_KEY with this secret and a policy
 * for MLFLOW_BUCKET alone, on every start. Added to an existing installation by running bootstrap again (issue 9).
 */
function writeMlflowS3Secret(plan: Plan, existing: Existing, report: Report): void {
  const rotate = plan.targets.has("mlflow-s3") && exists(plan.at(SECRET_FILES.mlflowS3));
  const { action } = ensureSecret(plan, report, SECRET_FILES.mlflowS3, rotate, generatePassword);
  if (action === "rotated" || (action === "created" && existing.env !== undefined)) {
    report.nextSteps.push(
      `${SECRET_FILES.mlflowS3} is ${action === "rotated" ? "rotated" : "new"}: createbuckets gives it to the S3 server and MLflow reads it when their containers start: docker compose up -d --wait --force-recreate createbuckets mlflow`,
    );
  }
}

interface ProxyPassword {
  password: string;
  action: FileAction;
  /** How hard the password is to guess (log10 of guesses), computed only when a hash line is written. */
  strength: () => number;
  /** The proxy password when this run generated it. */
  newPassword?: string;
}

function writeProxyPassword(plan: Plan, existing: Existing, report: Report): ProxyPassword {
  let generated: string | undefined;
  const rotate = plan.targets.has("proxy") && existing.proxyPassword !== undefined;
  const { password, action } = ensureSecret(plan, report, plan.passwordFile, rotate, () => plan.password ?? (generated = generatePassword()));
  const newPassword = action === "kept" ? undefined : generated;
  // A password generated now has 240 random bits; any other (chosen, or kept from the file) gets an estimate.
  const strength = () => (newPassword !== undefined ? GENERATED_GUESSES_LOG10 : estimateGuessesLog10(password, passwordContext(plan)).guessesLog10);
  return { password, action, strength, newPassword };
}

function writeUsersFiles(plan: Plan, proxy: ProxyPassword, report: Report): void {
  const { at, user } = plan;
  let hashes: { caddy: string; htpasswd: string } | undefined;
  let changed = proxy.action !== "kept";
  for (const { path, format, hash } of USERS_FILES) {
    const text = readIfExists(at(path));
    const current = text === undefined ? undefined : findUserHash(text, user, format);
    if (current !== undefined && proxy.action === "kept") {
      if (tightenMode(at(path))) report.warnings.push(`${path} was readable by others: its mode is now 0600`);
      if (format === "caddy" && !safeCompare(proxy.password, current)) {
        report.warnings.push(
          `the ${user} line in ${path} does not match ${plan.passwordFile} (edited by hand?) — to make the file's password the login: ` +
            `npm run bootstrap -- --rotate proxy:${user} --password-stdin < ${plan.passwordFile}`,
        );
      }
      report.files.push({ path, action: "kept" });
      continue;
    }
    hashes ??= proxyHashes(proxy.password, proxy.strength());
    const line = formatUserLine(user, hash(hashes), format);
    if (text === undefined && createFileExclusive(at(path), `${line}\n`, SECRET_FILE_MODE)) {
      report.files.push({ path, action: "created" });
    } else {
      replaceFile(at(path), setUserLine(readIfExists(at(path)) ?? "", user, line, format), SECRET_FILE_MODE);
      report.files.push({ path, action: current === undefined ? "updated" : "rotated" });
    }
    changed = true;
  }
  if (changed && report.files.some((file) => file.path.startsWith("secrets/proxy_users") && file.action !== "created")) {
    report.nextSteps.push("If the stack is running, the proxy picks up the changed login with: docker compose restart proxy");
  }
}

/**
 * The Caddy user guard (caddy/Caddyfile imports it): rebuilt from proxy_users.caddy on every run, under the lock, so it
 * always names exactly the users of that file, also for installs made before it existed. Written only when it changed.
 * A user whose password bootstrap generated (secrets/proxy_password.<user>, hash of cost 4) must also send its first
 * characters (caddy-user-guard.ts, generatedPasswordPrefix); so a --rotate updates the guard in the same run, and a
 * deleted password file leaves the user name only.
 */
export function caddyGuardFor(dir: string): string {
  const users = readIfExists(join(dir, SECRET_FILES.caddyUsers)) ?? "";
  const password = (user: string) => (USER_NAME.test(user) ? readIfExists(join(dir, SECRET_FILES.proxyPassword(user))) : undefined);
  return caddyGuardFile(users, guardPasswordPrefixes(users, password));
}

function writeCaddyGuard(plan: Plan, report: Report): void {
  const path = SECRET_FILES.caddyGuard;
  let content: string;
  try {
    content = caddyGuardFor(plan.dir);
  } catch (error) {
    throw new UserError(`cannot build ${path} from ${SECRET_FILES.caddyUsers}: ${(error as Error).message} — fix or remove that line`);
  }
  const current = readIfExists(plan.at(path));
  let action: FileAction;
  if (current === content) {
    if (tightenMode(plan.at(path))) report.warnings.push(`${path} was readable by others: its mode is now 0600`);
    action = "kept";
  } else if (current === undefined && createFileExclusive(plan.at(path), content, SECRET_FILE_MODE)) {
    action = "created";
  } else {
    replaceFile(plan.at(path), content, SECRET_FILE_MODE);
    action = "updated";
  }
  report.files.push({ path, action });
  const usersFile = report.files.find((file) => file.path === SECRET_FILES.caddyUsers);
  if (action === "created" && usersFile?.action === "kept") {
    report.nextSteps.push(`The proxy reads the new ${path} (compose.yml secret proxy_users_caddy_guard): docker compose up -d`);
  } else if (action === "updated" && usersFile?.action === "kept") {
    report.nextSteps.push(`The proxy reads the changed ${path} when it is recreated: docker compose up -d --force-recreate proxy`);
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function safeCompare(password: string, hash: string): boolean {
  try {
    return bcrypt.compareSync(password, hash);
  } catch {
    return false;
  }
}
