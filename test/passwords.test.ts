import { describe, expect, it } from "vitest";
import { estimateGuessesLog10, generatePassword, MIN_GUESSES_LOG10, MIN_PASSWORD_LENGTH, passwordProblems } from "../scripts/lib/passwords.ts";

describe("generatePassword", () => {
  it("gives long passwords in the URL-safe alphabet, different every time", () => {
    const passwords = Array.from({ length: 200 }, generatePassword);
    for (const password of passwords) {
      expect(password.length).toBeGreaterThanOrEqual(32);
      expect(password).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(encodeURIComponent(password)).toBe(password); // safe in a postgresql:// URI as is
    }
    expect(new Set(passwords).size).toBe(passwords.length);
  });

  it("uses the whole alphabet (not a biased subset)", () => {
    const seen = new Set(Array.from({ length: 200 }, generatePassword).join(""));
    expect(seen.size).toBe(64);
  });

  it("passes its own strength check", () => {
    for (let i = 0; i < 100; i++) expect(passwordProblems(generatePassword())).toEqual([]);
  });
});

describe("passwordProblems", () => {
  it.each([
    ["Tr0ub4dor&3-horse-staple"],
    ["kettle-Orbit-9-lantern-Quay"],
    ["vS8#q2!mZ0pL4@xR"],
    ["correct horse battery staple purple"], // lower-case letters and spaces: two kinds, long
  ])("accepts %j", (password) => {
    expect(passwordProblems(password)).toEqual([]);
  });

  it.each([
    ["short", "characters"],
    ["Sh0rt!pass", "characters"],
    ["aaaaaaaaaaaaaaaaaaaaaaaa", "easy to guess"],
    ["abcdefghijklmnopqrstuvwxyz", "easy to guess"],
    ["12345678901234567890", "easy to guess"],
    ["passwordpassword", "easy to guess"],
    ["Password1234567!", "easy to guess"],
    ["Admin!Admin!Admin!2024", "easy to guess"],
    ["qwertyqwertyqwerty1", "easy to guess"],
    ["1q2w3e4r5t6y7u8i", "easy to guess"],
    // issue 9: these passed the old hand-written rules.
    ["Passw0rd12345678", "easy to guess"],
    ["December2025!!!!", "easy to guess"],
    ["Summer2024!Summer", "easy to guess"],
    ["alice-alice-alice-2024", "easy to guess"],
    ["Good-Password-With\nNewline", "control"],
    [`${"Ab1-".repeat(20)}`, "72 bytes"],
  ])("refuses %j (%s)", (password, reason) => {
    const problems = passwordProblems(password);
    expect(problems.join("; ")).toContain(reason);
  });

  it("counts the user name and the domain as known to the attacker", () => {
    const password = "zephyrine-quokka!";
    const alone = estimateGuessesLog10(password).guessesLog10;
    expect(estimateGuessesLog10(password, ["zephyrine", "quokka"]).guessesLog10).toBeLessThan(alone - 3);
  });

  it("estimates generated passwords far above the minimum", () => {
    for (let i = 0; i < 20; i++) expect(estimateGuessesLog10(generatePassword()).guessesLog10).toBeGreaterThan(MIN_GUESSES_LOG10 + 20);
  });

  it("counts characters, not bytes, for the minimum length", () => {
    const password = "ÄÖÜäöüß€1aB-xyz"; // 15 characters, more than 15 bytes
    expect([...password].length).toBe(MIN_PASSWORD_LENGTH - 1);
    expect(passwordProblems(password).join()).toContain(`needs at least ${MIN_PASSWORD_LENGTH}`);
  });
});
