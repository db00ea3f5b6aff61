// The user guard's regex against the real encoder (Buffer's base64 = Go's StdEncoding): every password of a known
// user passes, no other user name does, also one that shares a prefix with a known one.
import bcrypt from "bcryptjs";
import { randomBytes, randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  authorizationPattern,
  caddyGuardFile,
  generatedPasswordPrefix,
  GUARD_MATCHER,
  GUARD_PASSWORD_CHARS,
  guardPasswordPrefixes,
  userPrefixPattern,
  usersOfCaddyFile,
} from "../scripts/lib/caddy-user-guard.ts";
import { caddyHash, proxyHashes } from "../scripts/lib/password-hashes.ts";
import { generatePassword, GENERATED_GUESSES_LOG10, MIN_GUESSES_LOG10 } from "../scripts/lib/passwords.ts";

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

  it("writes a base64 \"+\" as [+] (a quantifier otherwise), never with a backslash", () => {
    expect(Buffer.from("ab~").toString("base64")).toBe("YWJ+");
    expect(userPrefixPattern("ab~")).toBe("YWJ[+]O[g-v]");
    const guard = new RegExp(authorizationPattern(["ab~", "x?y"]));
    for (const password of passwords().slice(0, 60)) {
      expect(header("ab~", password)).toMatch(guard);
      expect(header("x?y", password)).toMatch(guard);
    }
    expect(header("abb", "x")).not.toMatch(guard);
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

describe("password prefixes of generated passwords", () => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  it("lets the right password through, always: many generated passwords, several user names", () => {
    for (const user of ["mlflow", "a", "ab", "abc", "alice", "user@example.com"]) {
      for (let i = 0; i < 300; i++) {
        const password = generatePassword();
        const guard = new RegExp(authorizationPattern([user, "other"], new Map([[user, password.slice(0, GUARD_PASSWORD_CHARS)]])));
        expect(header(user, password), `${user}:${password}`).toMatch(guard);
        // "other" has no prefix: any password of it passes.
        expect(header("other", randomBytes(randomInt(0, 40)))).toMatch(guard);
      }
    }
  });

  it("rejects a password with any other first three characters, and accepts every rest after the right three", () => {
    const password = generatePassword();
    const start = password.slice(0, GUARD_PASSWORD_CHARS);
    const guard = new RegExp(authorizationPattern(["mlflow"], new Map([["mlflow", start]])));
    for (let i = 0; i < 2000; i++) {
      const other = generatePassword();
      if (!other.startsWith(start)) expect(header("mlflow", other), other).not.toMatch(guard);
      expect(header("mlflow", start + other.slice(i % 38)), other).toMatch(guard);
    }
    // One character off in each position, every character of the alphabet.
    for (let position = 0; position < GUARD_PASSWORD_CHARS; position++) {
      for (const c of alphabet) {
        if (c === start[position]) continue;
        const wrong = start.slice(0, position) + c + start.slice(position + 1) + password.slice(GUARD_PASSWORD_CHARS);
        expect(header("mlflow", wrong), wrong).not.toMatch(guard);
      }
    }
    for (const short of ["", start.slice(0, 1), start.slice(0, 2)]) expect(header("mlflow", short), short).not.toMatch(guard);
  });

  it("generatedPasswordPrefix: only a generated-shape password, cost 4, whose hash matches", () => {
    const password = generatePassword();
    const hash = proxyHashes(password, GENERATED_GUESSES_LOG10).caddy;
    expect(hash).toMatch(/^\$2[aby]\$04\$/);
    expect(generatedPasswordPrefix(password, hash)).toBe(password.slice(0, 3));
    expect(generatedPasswordPrefix(undefined, hash)).toBe(""); // the password file is gone
    expect(generatedPasswordPrefix(generatePassword(), hash)).toBe(""); // out of step with the users file
    expect(generatedPasswordPrefix(password, caddyHash(password, 5))).toBe(""); // not bootstrap's mark
    expect(generatedPasswordPrefix(`${password}\n`, hash)).toBe("");
    // The right shape but guessable: no prefix even at cost 4.
    const guessable = "a".repeat(40);
    expect(generatedPasswordPrefix(guessable, caddyHash(guessable, 4))).toBe("");
  });

  it("never puts a character of a chosen password into the guard file", () => {
    const chosen = ["correct-horse-battery-staple-42", "Tr0ub4dor&3-zebra-violin", "ZyX_wvu-9876-pqrs-LMNO-ijkl-EFGH-abcd-12", randomBytes(24).toString("base64url")];
    for (const password of chosen) {
      const users = `mlflow ${proxyHashes(password, MIN_GUESSES_LOG10).caddy}\n`;
      expect(users).not.toMatch(/\$2[aby]\$04\$/);
      const prefixes = guardPasswordPrefixes(users, () => password);
      expect(prefixes.size).toBe(0);
      const file = caddyGuardFile(users, prefixes);
      expect(file).toBe(caddyGuardFile(users));
      // No pattern derived from any of the password's first characters is in the file.
      for (let k = 1; k <= 4; k++) expect(file, `${password}: ${k} characters`).not.toContain(userPrefixPattern("mlflow", password.slice(0, k)).slice(0, 12));
    }
  });

  it("guardPasswordPrefixes: per user, from its password file (undefined when missing)", () => {
    const [alice, bob, carol] = [generatePassword(), generatePassword(), "carol-chose-a-long-passphrase-here"];
    const users = [`alice ${caddyHash(alice, 4)}`, `bob ${caddyHash(bob, 4)}`, `carol ${proxyHashes(carol, MIN_GUESSES_LOG10).caddy}`].join("\n");
    const files: Record<string, string> = { alice, carol };
    const prefixes = guardPasswordPrefixes(users, (user) => files[user]);
    expect([...prefixes]).toEqual([["alice", alice.slice(0, 3)]]);
    const guard = new RegExp(authorizationPattern(usersOfCaddyFile(users), prefixes));
    expect(header("alice", alice)).toMatch(guard);
    expect(header("bob", bob)).toMatch(guard);
    expect(header("bob", "anything")).toMatch(guard); // no password file: user name only
    expect(header("carol", carol)).toMatch(guard);
    expect(header("carol", "x")).toMatch(guard);
    expect(bcrypt.compareSync(alice, users.split("\n")[0].split(" ")[1])).toBe(true);
  });
});
