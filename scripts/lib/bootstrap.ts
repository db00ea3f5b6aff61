// `npm run bootstrap`: creates .env from .env.example and the secrets in secrets/, once. An existing file is never
// regenerated (Postgres reads its password only on first init: a new one would lock MLflow out of its database);
// --rotate is the one explicit way to replace a secret. All checks run before the first write.
import bcrypt from "bcryptjs";
import { statSync } from "node:fs";
import { join } from "node:path";
import { UsageError, UserError } from "./cli.ts";
import { missingKeys, parseEnv, setEnvValue } from "./envfile.ts";
import { caddyHash, nginxHash } from "./password-hashes.ts";
import { generatePassword, passwordProblems, PASSWORD_RULES } from "./passwords.ts";
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

export type RotateTarget = "postgres" | "minio" | "proxy";
export type FileAction = "created" | "kept" | "updated" | "rotated";

export interface BootstrapOptions {
  /** Project directory: holds .env.example; .env and secrets/ are written here. */
  dir: string;
  /** Proxy login user (default `mlflow`). */
  user?: string;
  /** DOMAIN for a new .env; must match an existing .env. */
  domain?: string;
  /** Secrets to replace: `postgres`, `minio`, `proxy` (the user's proxy password) or `proxy:<user>`. */
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

export function validateUser(user: string): string {
  if (!/^[a-z0-9._-]{1,64}$/.test(user)) {
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
    if (name === "postgres" || name === "minio" || name === "proxy") {
      targets.add(name);
      continue;
    }
    const match = /^proxy:(.*)$/.exec(name);
    if (!match) throw new UsageError(`cannot rotate ${JSON.stringify(name)}: use postgres, minio, proxy or proxy:<user>`);
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

const USERS_FILES: { format: UsersFormat; path: string; hash: (password: string) => string }[] = [
  { format: "caddy", path: SECRET_FILES.caddyUsers, hash: (password) => caddyHash(password) },
  { format: "htpasswd", path: SECRET_FILES.nginxUsers, hash: (password) => nginxHash(password) },
];

/** Runs the whole bootstrap. Throws UserError/UsageError before writing anything when a check fails. */
export function bootstrap(options: BootstrapOptions): BootstrapResult {
  const dir = options.dir;
  const { targets, user: rotateUser } = parseRotate(options.rotate ?? [], options.user === undefined ? undefined : validateUser(options.user));
  const user = validateUser(rotateUser ?? DEFAULT_USER);
  const domain = options.domain === undefined ? undefined : validateDomain(options.domain);
  const at = (relative: string) => join(dir, relative);
  const passwordFile = SECRET_FILES.proxyPassword(user);

  // ---- Pre-flight: nothing is written until every check passed. ----
  if (!isDirectory(dir)) throw new UserError(`${dir} is not a directory — pass the project directory with --dir`);
  const example = readIfExists(at(".env.example"));
  if (example === undefined) throw new UserError(`no .env.example in ${dir} — run from the repository root or pass --dir`);
  if (isDirectory(at(".env"))) throw new UserError(`${at(".env")} is a directory — remove it, bootstrap creates .env from .env.example`);
  const existingEnv = readIfExists(at(".env"));
  if (existingEnv !== undefined && domain !== undefined) {
    const current = parseEnv(existingEnv).DOMAIN ?? "";
    if (current !== domain) {
      throw new UserError(`.env already sets DOMAIN=${current}, not ${domain} — edit DOMAIN in .env (bootstrap never rewrites .env)`);
    }
  }
  if (exists(at("secrets")) && !isDirectory(at("secrets"))) {
    throw new UserError(`${at("secrets")} exists and is not a directory — move it away and run again`);
  }
  for (const path of [SECRET_FILES.postgres, SECRET_FILES.minio, passwordFile, ...USERS_FILES.map((file) => file.path)]) {
    if (exists(at(path)) && !statSync(at(path)).isFile()) throw new UserError(`${path} exists but is not a regular file — move it away and run again`);
  }
  if (options.password !== undefined) {
    const problems = passwordProblems(options.password);
    if (problems.length > 0) throw new UserError(`password refused: ${problems.join("; ")}. Required: ${PASSWORD_RULES}`);
  }
  const existingPassword = readIfExists(at(passwordFile));
  if (options.password !== undefined && existingPassword !== undefined && !targets.has("proxy")) {
    throw new UserError(`${passwordFile} already exists — to replace it: npm run bootstrap -- --rotate proxy:${user} --password-stdin`);
  }
  if (existingPassword === undefined && !targets.has("proxy")) {
    for (const { path, format } of USERS_FILES) {
      const text = readIfExists(at(path));
      if (text !== undefined && findUserHash(text, user, format) !== undefined) {
        throw new UserError(`${path} has a line for ${user} but ${passwordFile} is missing — restore it, or set a new password with --rotate proxy:${user}`);
      }
    }
  }
  if (targets.has("postgres") && !options.force && exists(at(SECRET_FILES.postgres))) {
    throw new UserError(
      "Postgres reads its password only when the database is first created, so a rotated secrets/postgres_password " +
        "locks MLflow out until the database gets it too — rerun with --force to rotate and print the ALTER ROLE command to run",
    );
  }

  // ---- Writes: each file appears complete or not at all. ----
  const files: BootstrapResult["files"] = [];
  const warnings: string[] = [];
  const nextSteps: string[] = [];
  const record = (path: string, action: FileAction) => files.push({ path, action });

  let envText = existingEnv;
  if (envText === undefined) {
    const text = domain === undefined ? example : setEnvValue(example, "DOMAIN", domain);
    const created = createFileExclusive(at(".env"), text, ENV_FILE_MODE);
    envText = created ? text : (readIfExists(at(".env")) ?? text);
    record(".env", created ? "created" : "kept");
  } else {
    record(".env", "kept");
    const missing = missingKeys(example, envText);
    if (missing.length > 0) warnings.push(`.env lacks settings that .env.example has: ${missing.join(", ")} — copy them from .env.example`);
  }

  const secretsDir = ensurePrivateDir(at("secrets"));
  if (secretsDir === "tightened") warnings.push("secrets/ was readable by others: its mode is now 0700");
  removeStaleTemps(at("secrets"));
  removeStaleTemps(dir); // a killed run's ..env.tmp-* (no secrets in it, but not git-ignored)

  /** Creates a secret when missing, replaces it when rotating; returns the password now in the file. */
  const ensureSecret = (path: string, rotate: boolean, make: () => string): { password: string; action: FileAction } => {
    if (rotate) {
      const password = make();
      replaceFile(at(path), password, SECRET_FILE_MODE);
      return { password, action: "rotated" };
    }
    const existing = readIfExists(at(path));
    if (existing === undefined) {
      const password = make();
      if (createFileExclusive(at(path), password, SECRET_FILE_MODE)) return { password, action: "created" };
    }
    if (tightenMode(at(path))) warnings.push(`${path} was readable by others: its mode is now 0600`);
    return { password: passwordFromFile(readIfExists(at(path)) ?? ""), action: "kept" };
  };

  const postgres = ensureSecret(SECRET_FILES.postgres, targets.has("postgres") && exists(at(SECRET_FILES.postgres)), generatePassword);
  record(SECRET_FILES.postgres, postgres.action);
  if (postgres.action === "created" && existingEnv !== undefined) {
    warnings.push(
      "secrets/postgres_password was missing and is new, but .env existed: if the database was initialised before, it still " +
        "has the old password — put the old file back, or give the database the new one (README: rotating the Postgres password)",
    );
  }
  if (postgres.action === "rotated") {
    const env = parseEnv(envText);
    const dbUser = env.POSTGRES_USER || "mlflow";
    const db = env.POSTGRES_DB || "mlflow";
    nextSteps.push(
      "The database still has the old Postgres password. Give it the new one (the password travels on stdin, not in a command line):\n" +
        `    docker compose exec -T db psql -v ON_ERROR_STOP=1 -U ${dbUser} -d ${db} <<SQL\n` +
        `    ALTER ROLE CURRENT_USER PASSWORD '$(cat ${SECRET_FILES.postgres})';\n` +
        "    SQL\n" +
        "  then restart MLflow so it reads the new file: docker compose up -d --force-recreate mlflow",
    );
  }

  const minio = ensureSecret(SECRET_FILES.minio, targets.has("minio") && exists(at(SECRET_FILES.minio)), generatePassword);
  record(SECRET_FILES.minio, minio.action);
  if (minio.action === "rotated") {
    // MLflow and createbuckets use the same password as MinIO's root credentials (compose.yml).
    nextSteps.push("MinIO, MLflow and createbuckets read the MinIO root password when their containers start: docker compose up -d --force-recreate");
  }

  let generated: string | undefined;
  const proxy = ensureSecret(passwordFile, targets.has("proxy") && existingPassword !== undefined, () => options.password ?? (generated = generatePassword()));
  record(passwordFile, proxy.action);
  const newPassword = proxy.action === "kept" ? undefined : generated;

  let proxyChanged = proxy.action !== "kept";
  for (const { path, format, hash } of USERS_FILES) {
    const text = readIfExists(at(path));
    const current = text === undefined ? undefined : findUserHash(text, user, format);
    if (current !== undefined && proxy.action === "kept") {
      if (tightenMode(at(path))) warnings.push(`${path} was readable by others: its mode is now 0600`);
      if (format === "caddy" && !safeCompare(proxy.password, current)) {
        warnings.push(
          `the ${user} line in ${path} does not match ${passwordFile} (edited by hand?) — to make the file's password the login: ` +
            `npm run bootstrap -- --rotate proxy:${user} --password-stdin < ${passwordFile}`,
        );
      }
      record(path, "kept");
      continue;
    }
    const line = formatUserLine(user, hash(proxy.password), format);
    if (text === undefined && createFileExclusive(at(path), `${line}\n`, SECRET_FILE_MODE)) {
      record(path, "created");
    } else {
      replaceFile(at(path), setUserLine(readIfExists(at(path)) ?? "", user, line, format), SECRET_FILE_MODE);
      record(path, current === undefined ? "updated" : "rotated");
    }
    proxyChanged = true;
  }
  if (proxyChanged && files.some((file) => file.path.startsWith("secrets/proxy_users") && file.action !== "created")) {
    nextSteps.push("If the stack is running, the proxy picks up the changed login with: docker compose restart proxy");
  }

  if (files.some((file) => file.path === SECRET_FILES.postgres && file.action === "created")) {
    nextSteps.push("Start the stack: docker compose up -d --wait");
  }
    return { user, url: stackUrl(parseEnv(envText)), passwordFile, files, warnings, nextSteps, newPassword };
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
