// The secret files the compose files mount. A newer version of the stack may mount one that an older bootstrap never
// wrote (e.g. mlflow_s3_secret_key, proxy_users.caddy_guard); `docker compose up` would then fail half-way through a
// task, so tasks that restart services check first.
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parse } from "yaml";

const COMPOSE_FILES = ["compose.yml", "compose.prod.yml", "compose.nginx.yml"];

/** The secret files (relative to dir) that a compose file in dir names and that do not exist. */
export function missingSecretFiles(dir: string): string[] {
  const missing = new Set<string>();
  for (const name of COMPOSE_FILES) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const secrets = (parse(readFileSync(path, "utf8"), { logLevel: "error" }) ?? {}).secrets ?? {};
    for (const secret of Object.values<{ file?: unknown }>(secrets)) {
      if (typeof secret?.file !== "string") continue;
      const file = join(dir, secret.file);
      if (!existsSync(file)) missing.add(relative(dir, file));
    }
  }
  return [...missing].sort();
}
