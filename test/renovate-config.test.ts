// renovate.json proposes updates for what we pin. Renovate's own validator (npm package `renovate`,
// renovate-config-validator; v44 needs Node >= 24.11) is ~440 MB, so it is not a dependency: this test checks the
// structure and that the patterns really find our pins, and runs the validator when it is on PATH or in
// RENOVATE_VALIDATOR (.ci/run installs it; by hand: README "Tests").
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { findBinary } from "./support/binaries.ts";
import { REPO_ROOT } from "./support/proxies.ts";
import { makeTempDir } from "./support/tmp.ts";

const config = JSON.parse(readFileSync(join(REPO_ROOT, "renovate.json"), "utf8"));
const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

/**
 * managerFilePatterns (the successor of the deprecated fileMatch, which the validator's --strict refuses as "Config
 * migration necessary"): "/regex/" is a JavaScript RegExp source (named groups included), anything else a glob; ours
 * are all regexes.
 */
const fileMatches = (patterns: string[], path: string) =>
  patterns.some((pattern) => {
    const regex = /^\/(.*)\/$/.exec(pattern);
    if (!regex) throw new Error(`not a /regex/ pattern: ${pattern}`);
    return new RegExp(regex[1]).test(path);
  });

describe("renovate.json", () => {
  it("uses the docker-compose and dockerfile managers, plus a regex manager, and nothing else", () => {
    expect(config.$schema).toBe("https://docs.renovatebot.com/renovate-schema.json");
    expect([...config.enabledManagers].sort()).toEqual(["custom.regex", "docker-compose", "dockerfile"]);
  });

  it("finds MLFLOW_VERSION in .env.example and mlflow/Dockerfile, at the same version, as the ghcr image tag", () => {
    const [manager] = config.customManagers;
    expect(manager).toMatchObject({ customType: "regex", datasourceTemplate: "docker", depNameTemplate: "ghcr.io/mlflow/mlflow" });
    const versions = [".env.example", "mlflow/Dockerfile"].map((path) => {
      expect(fileMatches(manager.managerFilePatterns, path), path).toBe(true);
      const text = read(path);
      const found = manager.matchStrings.flatMap((source: string) => [...text.matchAll(new RegExp(source, "g"))].map((m) => m.groups!.currentValue));
      expect(found, path).toHaveLength(1);
      return found[0];
    });
    expect(versions[0]).toBe(versions[1]);
    expect(read("mlflow/Dockerfile")).toContain("FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}");
    // The tag is v<version>; the version Renovate compares is what follows the v (and -full etc. are skipped).
    const extract = new RegExp(manager.extractVersionTemplate);
    expect(extract.exec(`v${versions[0]}`)?.groups?.version).toBe(versions[0]);
    expect(extract.exec(`v${versions[0]}-full`)).toBeNull();
    expect(fileMatches(manager.managerFilePatterns, "compose.yml")).toBe(false);
  });

  it("sees every compose image as name:tag (Renovate's docker-compose manager reads `image:`) and never bumps a postgres major", () => {
    for (const file of ["compose.yml", "compose.prod.yml", "compose.nginx.yml"]) {
      const services = parse(read(file), { logLevel: "error" }).services ?? {}; // !override/!reset: tags compose knows
      for (const [name, service] of Object.entries<any>(services)) {
        if (!service.image || service.image.includes("${")) continue; // our own build (mlflow-stack/mlflow:${MLFLOW_VERSION})
        expect(service.image, `${file} ${name}`).toMatch(/^[\w./-]+:[\w.-]+$/);
      }
    }
    const postgresMajor = config.packageRules.find((rule: any) => rule.matchPackageNames?.includes("postgres"));
    expect(postgresMajor).toMatchObject({ matchDatasources: ["docker"], matchUpdateTypes: ["major"], enabled: false });
  });

  it("compares Silo's RELEASE.<UTC time> tags by date (the server and the bucket job share the pin)", () => {
    const rule = config.packageRules.find((r: any) => r.matchPackageNames?.includes("pgsty/silo"));
    const pattern = new RegExp(String(rule.versioning).replace(/^regex:/, ""));
    const tags = [...read("compose.yml").matchAll(/image: pgsty\/silo:(\S+)/g)].map((m) => m[1]);
    expect(tags).toHaveLength(2);
    for (const tag of tags) expect(pattern.exec(tag)?.groups).toMatchObject({ major: "2026", minor: "09", patch: "16" });
    expect(pattern.exec("latest")).toBeNull();
    expect(pattern.exec("RELEASE.2026-09-16T00-00-00Z-distroless")).toBeNull();
  });

  it("uses no deprecated option (fileMatch)", () => {
    expect(JSON.stringify(config)).not.toContain('"fileMatch"');
  });

  // .ci/run installs the validator (npm package renovate, on Node 24) and sets RENOVATE_VALIDATOR: in CI a missing
  // validator is a failure, not a skip.
  const validator = process.env.RENOVATE_VALIDATOR || findBinary("renovate-config-validator");
  it.runIf(process.env.CI === "true" && !validator)("has the validator in CI (RENOVATE_VALIDATOR)", () => {
    expect.fail("CI=true but renovate-config-validator is neither in RENOVATE_VALIDATOR nor on PATH: .ci/run installs it");
  });
  it.skipIf(!validator)("passes renovate-config-validator --strict, which rejects a broken copy and a deprecated option", () => {
    // --no-global: a file given on the command line is otherwise checked as a self-hosted (global) configuration.
    const validate = (file: string) => spawnSync(validator!, ["--strict", "--no-global", file], { encoding: "utf8", timeout: 120_000 });
    const ok = validate(join(REPO_ROOT, "renovate.json"));
    expect(ok.stdout + ok.stderr).toMatch(/Config validated successfully/);
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    const { dir, cleanup } = makeTempDir("renovate");
    try {
      const broken = join(dir, "renovate.json");
      writeFileSync(broken, JSON.stringify({ ...config, enabledManagers: [...config.enabledManagers, "no-such-manager"] }));
      const bad = validate(broken);
      expect(bad.stdout + bad.stderr).toMatch(/Found errors in configuration/);
      expect(bad.status).not.toBe(0);
      const deprecated = join(dir, "deprecated.json");
      const [first, ...rest] = config.customManagers;
      const { managerFilePatterns, ...others } = first;
      writeFileSync(deprecated, JSON.stringify({ ...config, customManagers: [{ ...others, fileMatch: managerFilePatterns.map((p: string) => p.slice(1, -1)) }, ...rest] }));
      const old = validate(deprecated);
      expect(old.stdout + old.stderr).toMatch(/Config migration necessary/);
      expect(old.status).not.toBe(0);
    } finally {
      cleanup();
    }
  });
});
