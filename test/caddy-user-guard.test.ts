// The user guard's regex against the real encoder (Buffer's base64 = Go's StdEncoding): every password of a known
// user passes, no other user name does, also one that shares a prefix with a known one.
import { randomBytes, randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { authorizationPattern, caddyGuardFile, GUARD_MATCHER, userPrefixPattern, usersOfCaddyFile } from "../scripts/lib/caddy-user-guard.ts";

const header = (user: string, password: string | Buffer) =>
  `Basic ${Buffer.concat([Buffer.from(`${user}:`), Buffer.isBuffer(password) ? password : Buffer.from(password)]).toString("base64")}`;

/** Passwords of every length mod 3, every first byte, and random bytes (not only printable). */
function passwords(): (string | Buffer)[] {
  const out: (string | Buffer)[] = ["", "x", "xy", "T9vQ2xLm8RkP4wZc7YhN3bJd", ":", "::::", "ü€😀"];
  for (let byte = 0; byte < 256; byte++) out.push(Buffer.from([byte]), Buffer.from([byte, 0xff - byte]), Buffer.from([byte, 0x41, 0x42]));
  for (let i = 0; i < 500; i++) out.push(randomBytes(randomInt(0, 80)));
  return out;
}

describe("userPrefixPattern", () => {
  it("is the fixed base64 characters plus one range, as worked out by hand for mlflow", () => {
    expect(userPrefixPattern("mlflow")).toBe("bWxmbG93O[g-v]");
    // "ab:" is 3 bytes: 4 fixed characters, then the password's own (none for an empty one).
    expect(userPrefixPattern("ab")).toBe("YWI6");
    // "a:" is 2 bytes: 2 fixed characters, then 4 values (the ":"'s low 4 bits and 2 of the password's).
    expect(userPrefixPattern("a")).toBe("YT[o-r]");
    // The mixed character always holds low bits of ":" (0x3A), so only these two ranges ever occur.
    expect(userPrefixPattern("zz")).toBe("eno6");
    expect(userPrefixPattern("user@example.com")).toMatch(/(\[g-v\]|\[o-r\]|[A-Za-z0-9+/])$/);
  });

  it("refuses names basic auth cannot carry", () => {
    expect(() => userPrefixPattern("")).toThrow();
    expect(() => userPrefixPattern("a:b")).toThrow();
    expect(() => authorizationPattern([])).toThrow(/no users/);
  });

  const users = ["mlflow", "alice", "bob", "a", "ab", "abc", "ml.flow-2", "x_y", "user@example.com", "z".repeat(64)];
  it.each(users)("accepts every password of %s, for it alone", (user) => {
    const mine = new RegExp(authorizationPattern([user]));
    for (const password of passwords()) expect(header(user, password), String(password)).toMatch(mine);
    for (const other of users.filter((name) => name !== user)) {
      for (const password of passwords().slice(0, 40)) expect(header(other, password), `${other} vs ${user}`).not.toMatch(mine);
    }
  });

  it("rejects names that share a prefix with a known one, or the name with a character more or less", () => {
    const guard = new RegExp(authorizationPattern(["mlflow", "alice"]));
    for (const user of ["mlflo", "mlfloww", "mlflow2", "mlflow ", "Mlflow", "alic", "alicea", "alice.", "", "ml", "xmlflow"]) {
      for (const password of ["", "p", "pw", "pwd", "T9vQ2xLm8RkP4wZc7YhN3bJd"]) expect(header(user, password), user).not.toMatch(guard);
    }
  });

  it("rejects other schemes, a missing password part, two headers joined by the placeholder, and junk", () => {
    const guard = new RegExp(authorizationPattern(["mlflow"]));
    const good = header("mlflow", "secret");
    expect(good).toMatch(guard);
    expect(good.replace("Basic", "basic")).toMatch(guard); // Go's parser ignores the scheme's case; so does the guard
    for (const value of [
      "",
      "Basic",
      "Basic ",
      `Bearer ${good.slice(6)}`,
      `Basic  ${good.slice(6)}`,
      `Basic ${Buffer.from("mlflow").toString("base64")}`,
      `${header("mallory", "x")},${good}`,
      `${good},${header("mallory", "x")}`,
      `${good}, ${good}`,
      `${good} `,
      `${good}!`,
      `${good}\n`,
    ]) {
      expect(value, JSON.stringify(value)).not.toMatch(guard);
    }
  });
});

describe("caddyGuardFile", () => {
  it("defines the matcher from the users of a Caddy users file, comments and blank lines skipped", () => {
    const users = "alice $2b$04$abc\n\n# a comment\n  bob   $2b$12$def  \n";
    expect(usersOfCaddyFile(users)).toEqual(["alice", "bob"]);
    const file = caddyGuardFile(users);
    expect(file).toContain(`${GUARD_MATCHER} expression \`!{http.request.header.Authorization}.matches("${authorizationPattern(["alice", "bob"])}")\``);
    // No `{` but the placeholder's: Caddy would read one as a placeholder; no backslash: CEL would read it as an escape.
    expect(file.replace("{http.request.header.Authorization}", "")).not.toMatch(/[{}\\]/);
  });

  it("refuses an empty users file", () => {
    expect(() => caddyGuardFile("\n# nobody\n")).toThrow(/no users/);
  });
});
