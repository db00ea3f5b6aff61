// Every Compose file, and every combination users run, is valid YAML, validates against the Compose schema, and
// passes dclint with the rules of .dclintrc. No Docker engine here: dclint carries the compose-spec JSON schema.
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DCLinter } from "dclint";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { COMBINATIONS, loadStack, parseCompose, ROOT } from "./support/compose.ts";
import { makeTempDir } from "./support/tmp.ts";

const FILES = ["compose.yml", "compose.prod.yml", "compose.nginx.yml"];

const projectConfig = JSON.parse(readFileSync(resolve(ROOT, ".dclintrc"), "utf8"));

// dclint's bundled .d.ts files use extension-less imports that NodeNext resolution cannot follow: typed here.
interface LintResult {
  filePath: string;
  errorCount: number;
  warningCount: number;
  messages: { rule: string; line: number; message: string }[];
}

function lint(paths: string[], rules: Record<string, unknown>): LintResult[] {
  const linter = new DCLinter({ rules, quiet: false, debug: false, exclude: [] } as never);
  return linter.lintFiles(paths, false) as LintResult[];
}

const describeMessages = (results: ReturnType<typeof lint>) =>
  results.flatMap((r) => r.messages.map((m) => `${r.filePath}:${m.line} ${m.rule}: ${m.message}`)).join("\n");

let tmp: ReturnType<typeof makeTempDir>;
beforeAll(() => {
  tmp = makeTempDir("compose-lint");
});
afterAll(() => tmp?.cleanup());

describe("Compose files pass dclint", () => {
  it.each(FILES)("%s: valid YAML, valid schema, no rule violations", (file) => {
    const results = lint([resolve(ROOT, file)], projectConfig.rules);
    expect(results).toHaveLength(1);
    expect(describeMessages(results)).toBe("");
    expect(results[0].errorCount + results[0].warningCount).toBe(0);
  });

  it.each(COMBINATIONS.map((files) => [files.join(" + "), files]))("merged %s validates against the schema", (_name, files) => {
    const merged = loadStack(files as string[]);
    const path = join(tmp.dir, `${(files as string[]).join("+")}`.replace(/[^A-Za-z0-9+.-]/g, "_"));
    writeFileSync(path, stringify(merged));
    // Style rules are for the files people edit; the merged result only has to be a valid Compose document.
    const results = lint([path], {}).map((r) => ({
      ...r,
      messages: r.messages.filter((m) => ["invalid-yaml", "invalid-schema", "unknown-error"].includes(m.rule)),
    }));
    expect(describeMessages(results)).toBe("");
  });

  it("the lint really runs: a broken document is reported", () => {
    const text = readFileSync(resolve(ROOT, "compose.yml"), "utf8");
    const broken = join(tmp.dir, "broken.yml");
    // A key the schema does not know, a floating image tag and a port bound to every interface.
    writeFileSync(
      broken,
      text
        .replace("image: postgres:18.6-trixie", "image: postgres:latest\n    bogus_key: 1")
        .replace('"127.0.0.1:${PROXY_PORT:-8080}:80"', '"8080:80"'),
    );
    const schemaOnly = describeMessages(lint([broken], projectConfig.rules));
    expect(schemaOnly).toMatch(/invalid-schema/);
    writeFileSync(broken, text.replace("image: postgres:18.6-trixie", "image: postgres:latest").replace('"127.0.0.1:${PROXY_PORT:-8080}:80"', '"8080:80"'));
    const rules = describeMessages(lint([broken], projectConfig.rules));
    expect(rules).toMatch(/service-image-require-explicit-tag/);
    expect(rules).toMatch(/no-unbound-port-interfaces/);
  });

  it("the overlays use Compose's merge tags where a list must be replaced, not extended", () => {
    const prod = parseCompose(readFileSync(resolve(ROOT, "compose.prod.yml"), "utf8"));
    expect(prod.services.proxy.ports?.tag).toBe("!override");
    const nginx = parseCompose(readFileSync(resolve(ROOT, "compose.nginx.yml"), "utf8"));
    expect(nginx.services.proxy.volumes?.tag).toBe("!override");
    expect(nginx.services.proxy.secrets?.tag).toBe("!override");
  });
});
