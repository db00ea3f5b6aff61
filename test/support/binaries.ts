// Finds the native programs tests run for real (caddy, nginx, postgres, ...).
// Locally a missing program skips the tests that need it; in CI (CI=true) it is a failure, never a silent skip.
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export const inCI = /^(1|true|yes)$/i.test(process.env.CI ?? "");

/** Absolute path of `name` on PATH or in `extraDirs`, or undefined. */
export function findBinary(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * For `describe.skipIf(!has(...))`-style use: returns the path, or undefined when missing outside CI.
 * In CI a missing binary throws at collection time, so the run fails and says what to install.
 */
export function requireBinary(name: string, debianPackage: string, extraDirs: string[] = []): string | undefined {
  const found = findBinary(name, extraDirs);
  if (!found && inCI) {
    throw new Error(`${name} not found: .ci/run must install the Debian package ${debianPackage}`);
  }
  if (!found) console.warn(`[skip] ${name} not found (apt-get install ${debianPackage}); tests that need it are skipped`);
  return found;
}

export const POSTGRES_BIN_DIR = "/usr/lib/postgresql/15/bin";
