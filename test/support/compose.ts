// Reading our Compose files the way Docker Compose does, for static tests (no Docker engine here):
//   - YAML with the `!reset` / `!override` tags of overlays (compose-go; Compose >= 2.18 / 2.24.4),
//   - merging overlays with the subset of Compose's merge rules our files use,
//   - `${VAR...}` interpolation from .env values,
// and the stack's policy checks, each a small function returning the violations it found (empty = fine), so a test
// can show every check fails on a deliberately broken document.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { parseDocument, YAMLMap, YAMLSeq } from "yaml";

export const ROOT = resolve(import.meta.dirname, "../..");

/** The ways the README tells users to start the stack (files in -f order). */
export const COMBINATIONS = [["compose.yml"], ["compose.yml", "compose.prod.yml"], ["compose.yml", "compose.nginx.yml"]];

// ---------------------------------------------------------------------------------------------------------------
// Loading

/** A value carrying a Compose merge tag, as left by `parseCompose`. */
export class ComposeTag {
  constructor(
    readonly tag: "!reset" | "!override",
    readonly value: unknown,
  ) {}
}

type Json = any; // Compose documents are free-form; the checks below test shapes as they go.
export type ComposeDoc = Record<string, Json>;

function taggedCollection<T extends YAMLMap | YAMLSeq>(tag: "!reset" | "!override", Base: new () => T) {
  return {
    tag,
    collection: Base === (YAMLMap as unknown) ? ("map" as const) : ("seq" as const),
    nodeClass: Base,
    resolve(node: T) {
      const out = new Base();
      out.items = node.items as never;
      out.toJSON = function (this: T, arg?: unknown, ctx?: never) {
        return new ComposeTag(tag, (Base.prototype as T).toJSON.call(this, arg, ctx));
      };
      return out;
    },
  };
}

const composeTags = (["!reset", "!override"] as const).flatMap((tag) => [
  taggedCollection(tag, YAMLMap),
  taggedCollection(tag, YAMLSeq),
  { tag, resolve: (text: string) => new ComposeTag(tag, text === "" || text === "null" || text === "~" ? null : text) },
]);

/** Parses one Compose file; `!reset`/`!override` values come back as ComposeTag. Throws on invalid YAML. */
export function parseCompose(text: string): ComposeDoc {
  const doc = parseDocument(text, { customTags: composeTags as never, merge: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) throw new Error(`invalid Compose YAML: ${problems.map((p) => p.message).join("; ")}`);
  return doc.toJS({ maxAliasCount: 100 }) as ComposeDoc;
}

export function loadCompose(file: string): ComposeDoc {
  return parseCompose(readFileSync(resolve(ROOT, file), "utf8"));
}

/** The settings of .env.example, as `npm run bootstrap` copies them to .env. */
export function envExample(): Record<string, string> {
  return parseDotenv(readFileSync(resolve(ROOT, ".env.example"), "utf8"));
}

// ---------------------------------------------------------------------------------------------------------------
// Merging (https://github.com/compose-spec/compose-spec/blob/main/13-merge.md, the parts our files use)

const isMap = (v: unknown): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof ComposeTag);

/** KEY=VALUE lists and maps alike, as a map. */
function toMap(value: Json, separator = "="): Record<string, Json> {
  if (!Array.isArray(value)) return { ...(value ?? {}) };
  const out: Record<string, Json> = {};
  for (const item of value) {
    const text = String(item);
    const at = text.indexOf(separator);
    out[at < 0 ? text : text.slice(0, at)] = at < 0 ? null : text.slice(at + 1);
  }
  return out;
}

/** Container path of a service volume (short or long syntax). */
export function volumeTarget(volume: Json): string {
  if (isMap(volume)) return String(volume.target);
  const parts = String(volume).split(":");
  return parts.length === 1 ? parts[0] : parts[1];
}

export function volumeSource(volume: Json): string | undefined {
  if (isMap(volume)) return volume.source;
  const parts = String(volume).split(":");
  return parts.length === 1 ? undefined : parts[0];
}

/** Path inside the container of a service's secret reference. */
export function secretTarget(secret: Json): string {
  const source = isMap(secret) ? String(secret.source) : String(secret);
  const target = isMap(secret) && secret.target ? String(secret.target) : source;
  return target.startsWith("/") ? target : `/run/secrets/${target}`;
}

export function secretSource(secret: Json): string {
  return isMap(secret) ? String(secret.source) : String(secret);
}

function mergeByKey(base: Json[], overlay: Json[], key: (item: Json) => string): Json[] {
  const out = new Map<string, Json>();
  for (const item of [...base, ...overlay]) out.set(key(item), item);
  return [...out.values()];
}

function appendUnique(base: Json[], overlay: Json[]): Json[] {
  const out = [...base];
  for (const item of overlay) if (!out.some((b) => JSON.stringify(b) === JSON.stringify(item))) out.push(item);
  return out;
}

const dependsOnMap = (value: Json) =>
  Array.isArray(value) ? Object.fromEntries(value.map((name) => [name, { condition: "service_started" }])) : value;

function mergeServiceKey(key: string, base: Json, overlay: Json): Json {
  if (overlay instanceof ComposeTag) return overlay.tag === "!reset" ? undefined : stripTags(overlay.value);
  if (base === undefined) return stripTags(overlay);
  switch (key) {
    case "command":
    case "entrypoint":
      return overlay;
    case "environment":
    case "labels":
    case "extra_hosts":
      return { ...toMap(base), ...toMap(overlay) };
    case "networks":
      return mergeMaps(toMap(base), toMap(overlay));
    case "depends_on":
      return mergeMaps(dependsOnMap(base), dependsOnMap(overlay));
    case "volumes":
      return mergeByKey(base, overlay, volumeTarget);
    case "secrets":
    case "configs":
      return mergeByKey(base, overlay, secretTarget);
    case "healthcheck":
      return { ...base, ...stripTags(overlay) }; // `test` is replaced, not appended
    default:
      if (Array.isArray(base) && Array.isArray(overlay)) return appendUnique(base, overlay);
      if (isMap(base) && isMap(overlay)) return mergeMaps(base, overlay);
      return overlay;
  }
}

function mergeMaps(base: Record<string, Json>, overlay: Record<string, Json>, service = false): Record<string, Json> {
  const out: Record<string, Json> = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    let merged: Json;
    if (service) merged = mergeServiceKey(key, base[key], value);
    else if (value instanceof ComposeTag) merged = value.tag === "!reset" ? undefined : stripTags(value.value);
    else if (isMap(base[key]) && isMap(value)) merged = mergeMaps(base[key], value);
    else if (Array.isArray(base[key]) && Array.isArray(value)) merged = appendUnique(base[key], value);
    else merged = stripTags(value);
    if (merged === undefined) delete out[key];
    else out[key] = merged;
  }
  return out;
}

/** `overlay` applied on `base` as `docker compose -f base -f overlay` does. */
export function mergeCompose(base: ComposeDoc, overlay: ComposeDoc): ComposeDoc {
  const out: ComposeDoc = { ...stripTags(base) };
  for (const [key, value] of Object.entries(overlay)) {
    if (key === "services" && isMap(value)) {
      const services: Record<string, Json> = { ...(out.services ?? {}) };
      for (const [name, service] of Object.entries(value)) {
        services[name] = name in services ? mergeMaps(services[name], service, true) : stripTags(service);
      }
      out.services = services;
    } else {
      out[key] = isMap(out[key]) && isMap(value) ? mergeMaps(out[key], value) : stripTags(value);
    }
  }
  return out;
}

/** A single file's tags resolved as Compose does when nothing lies below: !reset drops, !override keeps. */
export function stripTags(value: Json): Json {
  if (value instanceof ComposeTag) return value.tag === "!reset" ? undefined : stripTags(value.value);
  if (Array.isArray(value)) return value.map(stripTags).filter((v) => v !== undefined);
  if (isMap(value)) {
    const out: Record<string, Json> = {};
    for (const [key, v] of Object.entries(value)) {
      const stripped = stripTags(v);
      if (stripped !== undefined) out[key] = stripped;
    }
    return out;
  }
  return value;
}

/** The files merged in order (tags resolved), before interpolation. */
export function loadStack(files: string[]): ComposeDoc {
  return files.map(loadCompose).reduce((acc, doc) => mergeCompose(acc, doc), {} as ComposeDoc);
}

// ---------------------------------------------------------------------------------------------------------------
// Interpolation

const VARIABLE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** One string interpolated like Compose: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `${VAR:+alt}`. */
export function interpolateString(text: string, env: Record<string, string | undefined>): string {
  return text.replace(VARIABLE, (match, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (match === "$$") return "$";
    const name = braced ?? bare!;
    const value = env[name];
    const unsetOrEmpty = value === undefined || (op?.startsWith(":") && value === "");
    switch (op) {
      case ":-":
      case "-":
        return unsetOrEmpty ? interpolateString(arg ?? "", env) : value!;
      case ":?":
      case "?":
        if (unsetOrEmpty) throw new Error(`required variable ${name} is missing a value: ${arg}`);
        return value!;
      case ":+":
      case "+":
        return unsetOrEmpty ? "" : interpolateString(arg ?? "", env);
      default:
        return value ?? "";
    }
  });
}

export function interpolate(value: Json, env: Record<string, string | undefined>): Json {
  if (typeof value === "string") return interpolateString(value, env);
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (isMap(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  return value;
}

/** Every string in a document, with its path (for checks that scan text). */
export function* strings(value: Json, path = ""): Generator<[string, string]> {
  if (typeof value === "string") yield [path, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${path}[${i}]`);
  else if (isMap(value)) for (const [k, v] of Object.entries(value)) yield* strings(v, path ? `${path}.${k}` : k);
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers over a (merged, interpolated) document

export const services = (doc: ComposeDoc): [string, Record<string, Json>][] => Object.entries(doc.services ?? {});

export const environmentOf = (service: Record<string, Json>): Record<string, Json> => toMap(service.environment);

export const networksOf = (service: Record<string, Json>): string[] =>
  service.networks ? Object.keys(toMap(service.networks)) : ["default"];

const commandText = (value: Json): string => (Array.isArray(value) ? value.join(" ") : String(value ?? ""));

export const healthcheckText = (service: Record<string, Json>): string => {
  const test = service.healthcheck?.test;
  return Array.isArray(test) ? test.slice(test[0] === "CMD" || test[0] === "CMD-SHELL" ? 1 : 0).join(" ") : String(test ?? "");
};

/** Services that run once and exit: `restart: "no"`, or a dependant waits with service_completed_successfully. */
export function oneOffServices(doc: ComposeDoc): Set<string> {
  const out = new Set<string>();
  for (const [name, service] of services(doc)) {
    if (service.restart === "no") out.add(name);
    for (const [dep, spec] of Object.entries(dependsOnMap(service.depends_on ?? {}) as Record<string, Json>)) {
      if (spec?.condition === "service_completed_successfully") out.add(dep);
    }
  }
  return out;
}

/** A published port, normalised from the short or long syntax. */
export interface Published {
  service: string;
  hostIp: string;
  published: string;
  target: string;
  protocol: string;
}

export function publishedPorts(doc: ComposeDoc): Published[] {
  const out: Published[] = [];
  for (const [name, service] of services(doc)) {
    for (const port of service.ports ?? []) {
      if (isMap(port)) {
        out.push({
          service: name,
          hostIp: port.host_ip ?? "",
          published: String(port.published ?? ""),
          target: String(port.target),
          protocol: port.protocol ?? "tcp",
        });
        continue;
      }
      const [spec, protocol = "tcp"] = String(port).split("/");
      const parts = spec.split(":");
      const target = parts.pop()!;
      const published = parts.pop() ?? "";
      out.push({ service: name, hostIp: parts.join(":"), published, target, protocol });
    }
  }
  return out;
}

const imageTag = (image: string): string | undefined => {
  const last = image.split("/").pop()!;
  return last.includes(":") ? last.slice(last.indexOf(":") + 1) : undefined;
};

// ---------------------------------------------------------------------------------------------------------------
// Policy checks: each returns the violations as sentences (empty when the document complies)

export function checkRequiredServices(doc: ComposeDoc, required: string[]): string[] {
  return required.filter((name) => !doc.services?.[name]).map((name) => `service ${name} is missing`);
}

export function checkHealthchecks(doc: ComposeDoc): string[] {
  const oneOff = oneOffServices(doc);
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (oneOff.has(name)) continue;
    const hc = service.healthcheck;
    const test = hc?.test;
    if (!hc || hc.disable === true || !test || (Array.isArray(test) && test[0] === "NONE")) {
      out.push(`${name}: long-running service without a healthcheck`);
    } else if (!hc.timeout) {
      out.push(`${name}: healthcheck without a timeout`);
    }
  }
  return out;
}

export function checkDependsOnConditions(doc: ComposeDoc): string[] {
  const oneOff = oneOffServices(doc);
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (!service.depends_on) continue;
    if (Array.isArray(service.depends_on)) {
      out.push(`${name}: depends_on as a list only waits for the start; use conditions`);
      continue;
    }
    for (const [dep, spec] of Object.entries(service.depends_on as Record<string, Json>)) {
      if (!doc.services?.[dep]) out.push(`${name}: depends on unknown service ${dep}`);
      const want = oneOff.has(dep) ? "service_completed_successfully" : "service_healthy";
      if (spec?.condition !== want) out.push(`${name}: depends_on ${dep} should use condition ${want}, found ${spec?.condition}`);
    }
  }
  return out;
}

/**
 * `docker compose up --wait` exits 1 when a one-off container exits, even with 0, unless a long-running service waits
 * for it with service_completed_successfully (docker/compose#10596).
 */
export function checkOneOffsAdopted(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (service.restart !== "no") continue;
    const adopted = services(doc).some(
      ([other, s]) => other !== name && s.restart !== "no" && (dependsOnMap(s.depends_on ?? {}) as Record<string, Json>)[name]?.condition === "service_completed_successfully",
    );
    if (!adopted) out.push(`${name}: one-off job that no long-running service waits for; \`up --wait\` would fail when it exits`);
  }
  return out;
}

/** Images whose releases have two numbers (PostgreSQL 10+: major.minor); all others need x.y.z. */
const TWO_PART_VERSIONS = new Set(["postgres"]);

/** Exact versions (x.y.z, v-prefix and variant suffix allowed), a MinIO RELEASE stamp, or a digest. */
export function checkPinnedImages(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (!service.image) {
      if (!service.build) out.push(`${name}: neither image nor build`);
      continue;
    }
    const image = String(service.image);
    if (image.includes("@sha256:")) continue;
    const tag = imageTag(image) ?? "";
    const repository = image.split("/").pop()!.split(":")[0];
    const version = TWO_PART_VERSIONS.has(repository) ? String.raw`\d+\.\d+` : String.raw`v?\d+\.\d+\.\d+`;
    const exact = new RegExp(String.raw`^(${version}([-.][A-Za-z0-9.-]+)?|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)$`);
    if (!exact.test(tag)) {
      out.push(`${name}: image ${image} is not pinned to an exact version`);
    }
  }
  return out;
}

export function checkSecretsAreFiles(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, secret] of Object.entries((doc.secrets ?? {}) as Record<string, Json>)) {
    if (!secret?.file) out.push(`secret ${name}: not a file: source`);
    else if (!String(secret.file).startsWith("./secrets/")) out.push(`secret ${name}: ${secret.file} is outside ./secrets/`);
  }
  for (const [name, service] of services(doc)) {
    for (const secret of service.secrets ?? []) {
      if (!doc.secrets?.[secretSource(secret)]) out.push(`${name}: uses undeclared secret ${secretSource(secret)}`);
    }
  }
  return out;
}

/**
 * Every *_FILE variable names a file the service really mounts as a secret (MinIO starts as minioadmin:minioadmin when
 * it does not), and no service sets both VAR and VAR_FILE (the postgres entrypoint and ours exit on that).
 */
export function checkFileEnvMatchesSecrets(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const env = environmentOf(service);
    const mounted = new Set((service.secrets ?? []).map(secretTarget));
    for (const [key, value] of Object.entries(env)) {
      if (!key.endsWith("_FILE")) continue;
      const base = key.slice(0, -"_FILE".length);
      if (!mounted.has(String(value))) out.push(`${name}: ${key}=${value} is not the path of a secret mounted in this service`);
      if (env[base] !== undefined && env[base] !== null) out.push(`${name}: both ${base} and ${key} are set (exclusive)`);
    }
    if (isS3ServerImage(String(service.image ?? "")) && !service.entrypoint && !env.MINIO_ROOT_PASSWORD_FILE) {
      out.push(`${name}: MinIO without MINIO_ROOT_PASSWORD_FILE would run with the default minioadmin credentials`);
    }
  }
  return out;
}

const SECRET_KEY = /PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY/i;
const SECRET_VALUE = [
  /\$2[aby]\$\d\d\$/, // bcrypt
  /\$apr1\$|\{SHA\}|\{SSHA\}/, // htpasswd hashes
  /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s@]+@/i, // URI with credentials
  /--password[= ]\S|PGPASSWORD=|MC_HOST_/,
];

/** No password, key or hash in an environment value, command, entrypoint or healthcheck. */
export function checkNoSecretValues(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    for (const [key, value] of Object.entries(environmentOf(service))) {
      // A path (e.g. NGINX_HTPASSWD=/etc/nginx/htpasswd) names a file; it is not the secret itself.
      const isPath = typeof value === "string" && /^\/[^\s]*$/.test(value);
      if (SECRET_KEY.test(key) && !key.endsWith("_FILE") && value !== null && value !== "" && !isPath) {
        out.push(`${name}: environment ${key} holds a secret value; mount a secret and use ${key}_FILE`);
      }
    }
    const texts: [string, string][] = [
      ...[...strings(service.environment, "environment")],
      ["command", commandText(service.command)],
      ["entrypoint", commandText(service.entrypoint)],
      ["healthcheck", healthcheckText(service)],
    ];
    for (const [where, text] of texts) {
      if (SECRET_VALUE.some((pattern) => pattern.test(text))) out.push(`${name}: ${where} looks like it holds a secret`);
    }
    if (/alias set\s+\S+\s+\S+\s+[^\s|>\\]/.test(commandText(service.command))) {
      out.push(`${name}: mc alias set gets keys as arguments; pipe them on stdin`);
    }
  }
  return out;
}

/** PostgreSQL 18+ must have its volume at /var/lib/postgresql; 17 and older at /var/lib/postgresql/data. */
export function checkPostgresVolume(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const match = /^(?:docker\.io\/)?(?:library\/)?postgres:(\d+)/.exec(String(service.image ?? ""));
    if (!match) continue;
    const major = Number(match[1]);
    const targets = (service.volumes ?? []).map(volumeTarget);
    const want = major >= 18 ? "/var/lib/postgresql" : "/var/lib/postgresql/data";
    if (!targets.includes(want)) out.push(`${name}: PostgreSQL ${major} needs its data volume at ${want}`);
    if (major >= 18 && targets.includes("/var/lib/postgresql/data")) {
      out.push(`${name}: PostgreSQL ${major} refuses to start with a volume at /var/lib/postgresql/data`);
    }
  }
  return out;
}

/** pg_isready over TCP: a socket check passes while initdb's temporary server (no TCP) is running. */
export function checkPgIsReadyTcp(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (!/postgres:/.test(String(service.image ?? ""))) continue;
    const text = healthcheckText(service);
    if (!/pg_isready/.test(text)) out.push(`${name}: healthcheck does not use pg_isready`);
    else if (!/(-h\s*|--host[= ])127\.0\.0\.1\b/.test(text)) out.push(`${name}: pg_isready must check over TCP (-h 127.0.0.1)`);
  }
  return out;
}

/** The MLflow image (python slim) has neither curl nor wget. */
export function checkMlflowHealthcheckTools(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const fromMlflow = /mlflow\/mlflow|^mlflow-stack\/mlflow/.test(String(service.image ?? "")) || /mlflow/.test(JSON.stringify(service.build ?? ""));
    if (!fromMlflow) continue;
    const text = healthcheckText(service);
    if (/\b(curl|wget)\b/.test(text)) out.push(`${name}: the MLflow image has no curl or wget`);
    // MLflow's /health answers "OK" without its database: an API call that reads it makes a lost database unhealthy.
    if (!/\/api\/2\.0\/mlflow\//.test(text)) out.push(`${name}: healthcheck should call an API that reads the database (/health does not)`);
  }
  return out;
}

/** The caddy image declares no VOLUME: without /data and /config mounts, certificates are lost on recreate. */
export function checkCaddyVolumes(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (!/(^|\/)caddy:/.test(String(service.image ?? ""))) continue;
    const targets = (service.volumes ?? []).map(volumeTarget);
    for (const want of ["/data", "/config"]) if (!targets.includes(want)) out.push(`${name}: caddy needs a volume at ${want}`);
  }
  return out;
}

/**
 * Raw (uninterpolated) documents only: in commands and healthchecks, a `$` meant for the container's shell must be
 * written `$$`; a single `$` is interpolated by Compose and is only right for a variable of .env.
 */
export function checkDollarEscaping(raw: ComposeDoc, composeVariables: Set<string>): string[] {
  const out: string[] = [];
  for (const [name, service] of services(raw)) {
    const texts: [string, string][] = [
      ["healthcheck", healthcheckText(service)],
      ["command", commandText(service.command)],
      ["entrypoint", commandText(service.entrypoint)],
    ];
    for (const [where, text] of texts) {
      for (const match of text.matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$/g)) {
        if (match[0] === "$$") continue;
        if (match[1] && composeVariables.has(match[1])) continue;
        out.push(`${name}: ${where} has an unescaped $ at "${text.slice(match.index, match.index + 12)}" (write $$ for the container)`);
      }
    }
  }
  return out;
}

/**
 * Healthchecks run without the image's entrypoint, so a `$$VAR` there sees only the container's own environment
 * (e.g. not a POSTGRES_USER that an entrypoint derived from POSTGRES_USER_FILE). Run on the merged raw document.
 */
export function checkHealthcheckVariables(raw: ComposeDoc, imageVariables = new Set(["PATH", "HOME", "HOSTNAME"])): string[] {
  const out: string[] = [];
  for (const [name, service] of services(raw)) {
    const env = environmentOf(service);
    for (const match of healthcheckText(service).matchAll(/\$\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (!(match[1] in env) && !imageVariables.has(match[1])) {
        out.push(`${name}: healthcheck uses $${match[1]}, which is not in the service's environment`);
      }
    }
  }
  return out;
}

/** Raw documents only: every `${VAR}` has a default (`:-`) or a guard (`:?`), so nothing is silently empty. */
export function checkInterpolationGuards(raw: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [path, text] of strings(raw)) {
    for (const match of text.matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (match[0] === "$$") continue;
      if (match[2] === ":?" || match[2] === ":-") continue;
      out.push(`${path}: \${${match[1] ?? match[3]}} has neither a :- default nor a :? guard`);
    }
  }
  return out;
}

/** Locally only the proxy publishes, and only on loopback. */
export function checkLocalPorts(doc: ComposeDoc, proxy = "proxy"): string[] {
  const out: string[] = [];
  for (const port of publishedPorts(doc)) {
    if (port.service !== proxy) out.push(`${port.service}: publishes ${port.published}:${port.target}; only ${proxy} may`);
    else if (port.hostIp !== "127.0.0.1") out.push(`${port.service}: publishes ${port.published} on ${port.hostIp || "all interfaces"}, not 127.0.0.1`);
  }
  return out;
}

/** In production exactly 80/tcp, 443/tcp and 443/udp are published (by the proxy), nothing else. */
export function checkProdPorts(doc: ComposeDoc, proxy = "proxy"): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const port of publishedPorts(doc)) {
    const key = `${port.published}/${port.protocol}`;
    if (port.service !== proxy || !["80/tcp", "443/tcp", "443/udp"].includes(key)) {
      out.push(`${port.service}: publishes ${port.hostIp ? `${port.hostIp}:` : ""}${key}; production publishes only 80 and 443`);
    }
    seen.add(key);
  }
  for (const want of ["80/tcp", "443/tcp", "443/udp"]) if (!seen.has(want)) out.push(`${proxy}: ${want} is not published`);
  return out;
}

/** The proxy shares no network with the database or the object store. */
export function checkNetworkIsolation(doc: ComposeDoc, proxy = "proxy", internal = ["db", "minio"]): string[] {
  const out: string[] = [];
  const proxyNetworks = new Set(networksOf(doc.services?.[proxy] ?? {}));
  for (const name of internal) {
    for (const network of networksOf(doc.services?.[name] ?? {})) {
      if (proxyNetworks.has(network)) out.push(`${proxy} shares network ${network} with ${name}`);
    }
  }
  return out;
}

export function checkNoContainerName(doc: ComposeDoc): string[] {
  return services(doc)
    .filter(([, service]) => service.container_name !== undefined)
    .map(([name]) => `${name}: container_name stops two copies of the stack from running side by side`);
}

/**
 * The MinIO (and Silo) entrypoint prepends the server binary to any other command; mc's entrypoint is `mc`: shells
 * need `entrypoint:`. A multi-command mc job on the server image needs a shell entrypoint too.
 */
export function checkMinioEntrypoints(doc: ComposeDoc): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const image = String(service.image ?? "");
    const command = commandText(service.command);
    const shellEntrypoint = /^(\/bin\/)?(ba)?sh -c/.test(commandText(service.entrypoint));
    if (isS3ServerImage(image) && /^(\/bin\/)?(ba)?sh\b/.test(command) && !shellEntrypoint) {
      out.push(`${name}: the server image's entrypoint would run this as "silo ${command.split(" ")[0]} ..."`);
    }
    if ((/minio\/mc:/.test(image) || isS3ServerImage(image)) && /\bmc\b/.test(command) && /[\n;&|]/.test(command) && !shellEntrypoint) {
      out.push(`${name}: a multi-command mc job needs entrypoint: ["/bin/sh", "-c"]`);
    }
  }
  return out;
}

/** The S3 server images: MinIO's (frozen) and Silo, the maintained fork with the same entrypoint and settings. */
export function isS3ServerImage(image: string): boolean {
  return /(^|\/)minio\/minio:|(^|\/)pgsty\/(silo|minio):/.test(image);
}

/**
 * Images that no longer get releases or security fixes: MinIO's community images (source only since 2025-10, the
 * repository archived 2026-04; quay.io answers "unauthorized" now) and its frozen mc (docs/object-store.md).
 */
export function checkNoFrozenImages(doc: ComposeDoc): string[] {
  return services(doc)
    .filter(([, service]) => /(^|\/)minio\/(minio|mc)(:|@|$)/.test(String(service.image ?? "")))
    .map(([name, service]) => `${name}: ${service.image} is frozen (no security fixes); use Silo (docs/object-store.md)`);
}

/** Capabilities each service may add back after `cap_drop: [ALL]`, and why (compose.yml says the same beside each). */
export const ALLOWED_CAPS: Record<string, string[]> = {
  // entrypoint: chown of PGDATA and the socket dir, reads the secret as root, gosu to postgres
  db: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
  // reads its secret as root (a 0600 file of the host user)
  minio: ["DAC_OVERRIDE"],
  createbuckets: ["DAC_OVERRIDE"],
  mlflow: ["DAC_OVERRIDE"],
  // caddy: the binary's file capability; nginx: chgrp of the users file, chown of temp dirs, workers as user nginx
  proxy: ["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"],
};
/** Services whose root filesystem stays writable, and why. */
export const WRITABLE_ROOT: Record<string, string> = {
  mlflow: "spools every uploaded artifact to a temporary file; a tmpfs that size would count against its memory",
};

/**
 * Least privilege for every service: all capabilities dropped and only allowed ones added back, no-new-privileges,
 * a pids limit, and a read-only root filesystem unless WRITABLE_ROOT says why not.
 */
export function checkHardening(doc: ComposeDoc, allowedCaps = ALLOWED_CAPS, writable = WRITABLE_ROOT): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const dropped = (service.cap_drop ?? []).map((c: string) => String(c).toUpperCase());
    if (!dropped.includes("ALL")) out.push(`${name}: cap_drop does not drop ALL capabilities`);
    for (const cap of service.cap_add ?? []) {
      if (!(allowedCaps[name] ?? []).includes(String(cap).toUpperCase().replace(/^CAP_/, ""))) out.push(`${name}: cap_add ${cap} is not one it needs`);
    }
    if (!(service.security_opt ?? []).some((o: string) => /^no-new-privileges(:true|=true)?$/.test(String(o)))) {
      out.push(`${name}: no security_opt no-new-privileges:true`);
    }
    const limits = service.deploy?.resources?.limits;
    const pids = Number(limits?.pids ?? service.pids_limit);
    if (!(pids > 0)) out.push(`${name}: no pids limit`);
    // Compose (2.26 seen in the stack test) refuses pids_limit next to deploy.resources.limits unless their pids agree:
    // "can't set distinct values on 'pids_limit' and 'deploy.resources.limits.pids'". compose.prod.yml adds limits.
    if (service.pids_limit !== undefined && limits && Number(limits.pids ?? 0) !== Number(service.pids_limit)) {
      out.push(`${name}: pids_limit next to deploy.resources.limits (Compose refuses it): put pids in deploy.resources.limits`);
    }
    if (service.read_only !== true && !(name in writable)) out.push(`${name}: root filesystem is writable (read_only: true, tmpfs for what it writes)`);
  }
  return out;
}

/** Long-running services restart after a crash or reboot in every combination; one-off jobs never restart. */
export function checkRestartPolicies(doc: ComposeDoc): string[] {
  const oneOff = oneOffServices(doc);
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    const want = oneOff.has(name) ? "no" : "unless-stopped";
    if (String(service.restart ?? "no") !== want) out.push(`${name}: restart is ${service.restart ?? "unset"}, not ${want}`);
  }
  return out;
}

/**
 * The S3 root key (the server's root password secret) is mounted only in the server and the bucket job: MLflow has a
 * key of its own, limited to its bucket.
 */
export function checkRootKeyHolders(doc: ComposeDoc, rootSecret = "minio_root_password", holders = ["minio", "createbuckets"]): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    if (holders.includes(name)) continue;
    if ((service.secrets ?? []).map(secretSource).includes(rootSecret)) out.push(`${name}: mounts the S3 root key (${rootSecret})`);
    const env = environmentOf(service);
    if (String(env.AWS_SECRET_ACCESS_KEY_FILE ?? "").endsWith(`/${rootSecret}`)) out.push(`${name}: signs S3 requests with the root key`);
  }
  return out;
}

/** Bind-mounted files and directories exist in the repository (./secrets/ is created by bootstrap). */
export function checkBindSources(doc: ComposeDoc, root = ROOT): string[] {
  const out: string[] = [];
  for (const [name, service] of services(doc)) {
    for (const volume of service.volumes ?? []) {
      const source = volumeSource(volume);
      if (!source || !/^\.{1,2}\//.test(source)) continue;
      if (!existsSync(resolve(root, source))) out.push(`${name}: bind source ${source} does not exist`);
    }
  }
  return out;
}

/** All checks that apply to every combination, on a merged and interpolated document. */
export function checkAll(doc: ComposeDoc): string[] {
  return [
    ...checkHealthchecks(doc),
    ...checkDependsOnConditions(doc),
    ...checkOneOffsAdopted(doc),
    ...checkPinnedImages(doc),
    ...checkSecretsAreFiles(doc),
    ...checkFileEnvMatchesSecrets(doc),
    ...checkNoSecretValues(doc),
    ...checkPostgresVolume(doc),
    ...checkPgIsReadyTcp(doc),
    ...checkMlflowHealthcheckTools(doc),
    ...checkCaddyVolumes(doc),
    ...checkNetworkIsolation(doc),
    ...checkNoContainerName(doc),
    ...checkMinioEntrypoints(doc),
    ...checkBindSources(doc),
    ...checkNoFrozenImages(doc),
    ...checkHardening(doc),
    ...checkRestartPolicies(doc),
    ...checkRootKeyHolders(doc),
  ];
}
