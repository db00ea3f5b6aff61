import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatEnvValue, missingKeys, parseEnv, setEnvValue } from "../scripts/lib/envfile.ts";

const example = readFileSync(new URL("../.env.example", import.meta.url), "utf8");

describe("setEnvValue", () => {
  it("changes only the key's line in the real .env.example, keeping every comment", () => {
    const edited = setEnvValue(example, "DOMAIN", "mlflow.example.com");
    expect(parseEnv(edited)).toEqual({ ...parseEnv(example), DOMAIN: "mlflow.example.com" });
    const before = example.split("\n");
    const after = edited.split("\n");
    expect(after.length).toBe(before.length);
    const changed = after.filter((line, i) => line !== before[i]);
    expect(changed).toEqual(["DOMAIN=mlflow.example.com"]);
  });

  it("is idempotent: a second run gives the same text and no duplicate key", () => {
    const once = setEnvValue(example, "DOMAIN", "a.example.org");
    expect(setEnvValue(once, "DOMAIN", "a.example.org")).toBe(once);
    const twiceNew = setEnvValue(setEnvValue(once, "NEW_KEY", "1"), "NEW_KEY", "1");
    expect(twiceNew.match(/^NEW_KEY=/gm)).toHaveLength(1);
  });

  it("leaves commented-out assignments alone and drops later duplicates of the key", () => {
    const text = "# DOMAIN=commented\nDOMAIN=one\nX=1\nexport DOMAIN=two\n";
    expect(setEnvValue(text, "DOMAIN", "three")).toBe("# DOMAIN=commented\nDOMAIN=three\nX=1\n");
  });

  it("appends a missing key, with or without a final newline", () => {
    expect(setEnvValue("A=1\n", "B", "2")).toBe("A=1\nB=2\n");
    expect(setEnvValue("A=1", "B", "2")).toBe("A=1\nB=2\n");
    expect(setEnvValue("", "B", "2")).toBe("B=2\n");
  });

  it("keeps CRLF line endings", () => {
    expect(setEnvValue("A=1\r\nB=2\r\n", "A", "3")).toBe("A=3\r\nB=2\r\n");
  });

  it("does not treat a key as a prefix of another", () => {
    expect(setEnvValue("DOMAIN_ALIAS=x\n", "DOMAIN", "y")).toBe("DOMAIN_ALIAS=x\nDOMAIN=y\n");
  });

  it("rejects names that are not variable names", () => {
    expect(() => setEnvValue("", "A B", "1")).toThrow(/not an environment variable name/);
  });
});

describe("formatEnvValue", () => {
  it.each(["plain.example.com", "with space", "hash # inside", "it's", "a$b", ""])("round-trips %j through dotenv", (value) => {
    expect(parseEnv(`K=${formatEnvValue(value)}\n`).K).toBe(value);
  });

  it("refuses values it cannot write unambiguously", () => {
    expect(() => formatEnvValue("line\nbreak")).toThrow(/line break/);
    expect(() => formatEnvValue(`both ' and " and $`)).toThrow(/unambiguously/);
  });
});

describe("missingKeys", () => {
  it("names keys of the example that the env file lacks", () => {
    expect(missingKeys("A=1\nB=2\n# C=3\n", "A=5\n")).toEqual(["B"]);
    expect(missingKeys(example, example)).toEqual([]);
  });
});
