// The small pieces of backup/restore/upgrade: version order, backup names, which backups --keep prunes, manifest
// checks, the version verdict of a restore, and the local backup folder's bookkeeping.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { FORMAT, listBackups, parseManifest, serialize, toPrune, type Manifest } from "../scripts/lib/backup/manifest.ts";
import { versionVerdict } from "../scripts/lib/backup/restore.ts";
import { BACKUP_NAME, backupName, localStore } from "../scripts/lib/backup/store.ts";
import { compareVersions, isVersion } from "../scripts/lib/backup/versions.ts";
import { checkVersions, plan } from "../scripts/lib/upgrade/upgrade.ts";
import { makeTempDir } from "./support/tmp.ts";

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    format: FORMAT,
    name: "2026-12-01T03-00-00Z",
    startedAt: "2026-12-01T03:00:00.000Z",
    finishedAt: "2026-12-01T03:00:09.000Z",
    mlflowVersion: "3.18.0",
    alembicRevision: "aaaa",
    postgres: { serverVersion: "18.3", dumpedWith: "pg_dump in the db container" },
    database: { file: "database.dump", bytes: 10, sha256: "a".repeat(64), tables: { runs: 3 } },
    objects: { bucket: "mlflow", count: 1, bytes: 5, copied: 1, reused: 0, items: [{ key: "1/r/artifacts/x", size: 5, etag: "e", sha256: "b".repeat(64), file: "objects/c" }] },
    secrets: "not included",
    ...over,
  };
}

describe("versions", () => {
  it("orders MLflow versions numerically, a pre-release before its release", () => {
    expect(compareVersions("3.19.0", "3.18.0")).toBeGreaterThan(0);
    expect(compareVersions("3.9.0", "3.10.0")).toBeLessThan(0);
    expect(compareVersions("3.18", "3.18.0")).toBe(0);
    expect(compareVersions("3.19.0rc1", "3.19.0")).toBeLessThan(0);
    expect(compareVersions("3.19.0rc2", "3.19.0rc10")).toBeLessThan(0);
    expect(isVersion("latest")).toBe(false);
    expect(() => compareVersions("3.1.0", "x")).toThrow(/not a version: x/);
  });
  it("upgrade refuses a downgrade, the same version and a non-version; the plan names every step", () => {
    expect(() => checkVersions("3.18.0", "3.17.2")).toThrow(/3\.17\.2 is older than the stack's MLflow 3\.18\.0: a downgrade is not supported/);
    expect(() => checkVersions("3.18.0", "3.18.0")).toThrow(/already runs MLflow 3\.18\.0/);
    expect(() => checkVersions("3.18.0", "v3")).toThrow(/not an MLflow version/);
    expect(() => checkVersions(undefined, "3.19.0")).toThrow(/no MLFLOW_VERSION in \.env/);
    expect(() => checkVersions("3.18.0", "3.19.0")).not.toThrow();
    expect(plan("3.18.0", "3.19.0", true, "backups/").join("\n")).toMatch(/build[\s\S]*stop[\s\S]*backup -- --to backups\/[\s\S]*db-upgrade[\s\S]*up -d --wait[\s\S]*smoke[\s\S]*MLFLOW_VERSION=3\.19\.0 to \.env[\s\S]*start MLflow 3\.18\.0 again/);
    expect(plan("3.18.0", "3.19.0", false, "backups/").join("\n")).toMatch(/NO BACKUP/);
  });
});

describe("backup names and --keep", () => {
  it("names a backup by its UTC start second", () => {
    const name = backupName(new Date("2026-12-01T03:00:00.123Z"));
    expect(name).toBe("2026-12-01T03-00-00Z");
    expect(BACKUP_NAME.test(name) && BACKUP_NAME.test(`${name}-2`)).toBe(true);
    expect(BACKUP_NAME.test("notes")).toBe(false);
  });
  it("prunes the oldest complete backups only", () => {
    const b = (name: string, complete: boolean) => ({ name, complete });
    const all = [b("2026-01-01T00-00-00Z", false), b("2026-01-02T00-00-00Z", true), b("2026-01-03T00-00-00Z", true), b("2026-01-03T00-00-00Z-1", false), b("2026-01-04T00-00-00Z", true)];
    expect(toPrune(all, 2)).toEqual(["2026-01-02T00-00-00Z"]);
    expect(toPrune(all, 3)).toEqual([]);
    expect(toPrune(all, 1)).toEqual(["2026-01-02T00-00-00Z", "2026-01-03T00-00-00Z"]);
  });
});

describe("manifest checks", () => {
  it("accepts a manifest with its checksum; refuses a changed, unverifiable or inconsistent one", () => {
    const { text, sum } = serialize(manifest());
    expect(parseManifest(text, sum, "b").objects.count).toBe(1);
    expect(() => parseManifest(text.replace('"runs": 3', '"runs": 4'), sum, "b")).toThrow(/corrupt \(its sha256 does not match/);
    expect(() => parseManifest(text, undefined, "b")).toThrow(/unverifiable/);
    const inconsistent = serialize(manifest({ objects: { ...manifest().objects, bytes: 6 } }));
    expect(() => parseManifest(inconsistent.text, inconsistent.sum, "b")).toThrow(/object bytes do not add up/);
    const notJson = "{";
    expect(() => parseManifest(notJson, serialize(manifest()).sum.replace(/^\w+/, createHash("sha256").update(notJson).digest("hex")), "b")).toThrow(/not valid JSON/);
  });
  it("restore's version verdict: newer refused, older needs db-upgrade, unknown versions need the same schema", () => {
    expect(versionVerdict(manifest(), "3.18.0", "aaaa")).toBeNull();
    expect(() => versionVerdict(manifest({ mlflowVersion: "3.19.0" }), "3.18.0", "aaaa")).toThrow(/NEWER than the stack's 3\.18\.0/);
    expect(versionVerdict(manifest({ mlflowVersion: "3.17.0" }), "3.18.0", "bbbb")).toMatch(/older than the stack's 3\.18\.0: run docker compose run --rm mlflow db-upgrade/);
    expect(() => versionVerdict(manifest({ mlflowVersion: null }), null, "bbbb")).toThrow(/schema revisions differ \(backup aaaa, target bbbb\)/);
    expect(versionVerdict(manifest({ mlflowVersion: null }), null, null)).toBeNull();
  });
});

describe("a local backup folder", () => {
  it("lists backups by state; a manifest that does not verify makes a backup not count", async () => {
    const { dir, cleanup } = makeTempDir("backup-lib");
    try {
      const store = localStore(dir);
      const good = manifest({ name: "2026-01-02T00-00-00Z" });
      const { text, sum } = serialize(good);
      await store.writeText(good.name, "manifest.json", text);
      await store.writeText(good.name, "manifest.json.sha256", sum);
      await store.writeText("2026-01-03T00-00-00Z", "INCOMPLETE", "");
      await store.writeText("2026-01-04T00-00-00Z", "manifest.json", text);
      await store.writeText("2026-01-04T00-00-00Z", "manifest.json.sha256", "0".repeat(64));
      mkdirSync(join(dir, "not-a-backup"));
      writeFileSync(join(dir, "README"), "");
      const written = await store.write(good.name, "objects/x", Readable.from([Buffer.from("hello")]));
      expect(written).toEqual({ bytes: 5, sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" });
      const states = await listBackups(store);
      expect(states.map((s) => [s.name, s.complete])).toEqual([
        ["2026-01-02T00-00-00Z", true],
        ["2026-01-03T00-00-00Z", false],
        ["2026-01-04T00-00-00Z", false],
      ]);
      expect(states[2].problem).toMatch(/corrupt/);
      await store.reuse(good.name, "2026-01-05T00-00-00Z", "objects/x");
      expect((await store.size("2026-01-05T00-00-00Z", "objects/x"))).toBe(5);
    } finally {
      cleanup();
    }
  });
});
