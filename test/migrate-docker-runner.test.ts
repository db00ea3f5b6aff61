// The docker runner migrate uses: arguments reach the program as they are, exits are reported, a missing docker is one line.
import { describe, expect, it } from "vitest";
import { check, docker } from "../scripts/lib/migrate/docker.ts";
import { UserError } from "../scripts/lib/cli.ts";

describe("docker runner", () => {
  it("passes each argument unchanged (no shell splitting) and reports stdout, stderr and the exit code", async () => {
    const result = await docker("/", "sh").run(["-c", 'printf "%s|" "$@"; echo oops >&2; exit 3', "sh", "a b", "it's", "$HOME", ";rm -rf x"]);
    expect(result).toEqual({ code: 3, stdout: "a b|it's|$HOME|;rm -rf x|", stderr: "oops\n" });
    expect(() => check(result, "sh -c")).toThrow(new UserError("sh -c failed: oops"));
  });

  it("says in one line that docker is missing", async () => {
    await expect(docker("/", "no-such-docker-for-tests").run(["ps"])).rejects.toThrow(/^docker not found on PATH — install Docker/);
  });
});
