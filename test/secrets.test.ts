import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createFileExclusive,
  ensurePrivateDir,
  findUserHash,
  formatUserLine,
  passwordFromFile,
  readIfExists,
  removeStaleTemps,
  replaceFile,
  setUserLine,
  tightenMode,
} from "../scripts/lib/secrets.ts";
import { makeTempDir } from "./support/tmp.ts";

const mode = (path: string) => statSync(path).mode & 0o777;

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir("secrets")));
afterEach(() => cleanup());

describe("createFileExclusive", () => {
  it("creates a 0600 file with the content and leaves no temporary file", () => {
    const path = join(dir, "s");
    const oldUmask = process.umask(0o022);
    try {
      expect(createFileExclusive(path, "one")).toBe(true);
    } finally {
      process.umask(oldUmask);
    }
    expect(readFileSync(path, "utf8")).toBe("one");
    expect(mode(path)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["s"]);
  });

  it("never replaces an existing file: bytes and mtime stay, and it says so", () => {
    const path = join(dir, "s");
    writeFileSync(path, "GARBAGE", { mode: 0o600 });
    const past = new Date("2020-01-01T00:00:00Z");
    utimesSync(path, past, past);
    expect(createFileExclusive(path, "new")).toBe(false);
    expect(readFileSync(path, "utf8")).toBe("GARBAGE");
    expect(statSync(path).mtime.toISOString()).toBe(past.toISOString());
    expect(readdirSync(dir)).toEqual(["s"]);
  });

  it("applies the requested mode even under a restrictive umask", () => {
    const oldUmask = process.umask(0o077);
    try {
      createFileExclusive(join(dir, "env"), "A=1\n", 0o644);
    } finally {
      process.umask(oldUmask);
    }
    expect(mode(join(dir, "env"))).toBe(0o644);
  });

  // root ignores directory permissions, so this one only runs as an ordinary user.
  it.skipIf(process.getuid?.() === 0)("fails (and leaves nothing) when the directory cannot be written", () => {
    chmodSync(dir, 0o500);
    try {
      expect(() => createFileExclusive(join(dir, "s"), "x")).toThrow();
    } finally {
      chmodSync(dir, 0o700);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it("throws for a missing directory without creating anything", () => {
    expect(() => createFileExclusive(join(dir, "missing", "s"), "x")).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("replaceFile", () => {
  it("replaces content atomically with mode 0600, leaving no temporary file", () => {
    const path = join(dir, "s");
    writeFileSync(path, "old", { mode: 0o644 });
    replaceFile(path, "new");
    expect(readFileSync(path, "utf8")).toBe("new");
    expect(mode(path)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["s"]);
  });

  it("is a new inode (readers holding the old file keep the old content)", () => {
    const path = join(dir, "s");
    writeFileSync(path, "old");
    const before = statSync(path).ino;
    replaceFile(path, "new");
    expect(statSync(path).ino).not.toBe(before);
  });
});

describe("removeStaleTemps", () => {
  it("removes only old temporary files of an interrupted run", () => {
    const old = new Date(Date.now() - 120_000);
    writeFileSync(join(dir, ".postgres_password.tmp-0123456789ab"), "x");
    utimesSync(join(dir, ".postgres_password.tmp-0123456789ab"), old, old);
    writeFileSync(join(dir, ".minio_root_password.tmp-ba9876543210"), "fresh: may belong to a run in progress");
    writeFileSync(join(dir, "postgres_password"), "x");
    utimesSync(join(dir, "postgres_password"), old, old);
    writeFileSync(join(dir, ".notes.tmp-mine"), "x");
    utimesSync(join(dir, ".notes.tmp-mine"), old, old);
    expect(removeStaleTemps(dir)).toEqual([".postgres_password.tmp-0123456789ab"]);
    expect(readdirSync(dir).sort()).toEqual([".minio_root_password.tmp-ba9876543210", ".notes.tmp-mine", "postgres_password"]);
  });
});

describe("readIfExists / passwordFromFile", () => {
  it("returns undefined only for a missing file", () => {
    expect(readIfExists(join(dir, "nope"))).toBeUndefined();
    writeFileSync(join(dir, "empty"), "");
    expect(readIfExists(join(dir, "empty"))).toBe("");
    expect(() => readIfExists(dir)).toThrow(/EISDIR/);
  });

  it("drops one trailing line break from a hand-edited password file", () => {
    expect(passwordFromFile("abc\n")).toBe("abc");
    expect(passwordFromFile("abc\r\n")).toBe("abc");
    expect(passwordFromFile("abc")).toBe("abc");
    expect(passwordFromFile("abc\n\n")).toBe("abc\n");
  });
});

describe("ensurePrivateDir / tightenMode", () => {
  it("creates a 0700 directory, keeps it on the next call, and tightens a loose one", () => {
    const secrets = join(dir, "secrets");
    expect(ensurePrivateDir(secrets)).toBe("created");
    expect(mode(secrets)).toBe(0o700);
    expect(ensurePrivateDir(secrets)).toBe("kept");
    chmodSync(secrets, 0o755);
    expect(ensurePrivateDir(secrets)).toBe("tightened");
    expect(mode(secrets)).toBe(0o700);
  });

  it("removes group and other bits from a file and reports whether it did", () => {
    const path = join(dir, "s");
    writeFileSync(path, "x", { mode: 0o600 });
    expect(tightenMode(path)).toBe(false);
    chmodSync(path, 0o644);
    expect(tightenMode(path)).toBe(true);
    expect(mode(path)).toBe(0o600);
  });

  it("does not touch a path that exists as a file", () => {
    const path = join(dir, "secrets");
    writeFileSync(path, "x");
    expect(() => ensurePrivateDir(path)).toThrow();
    expect(readFileSync(path, "utf8")).toBe("x");
  });
});

describe("users files", () => {
  const caddy = "alice $2b$10$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nbob $2b$10$bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
  const htpasswd = "alice:{SSHA}aaaa\n# a comment\nbob:{SSHA}bbbb\n";

  it("finds a user's hash in either format, and only that user's", () => {
    expect(findUserHash(caddy, "bob", "caddy")).toMatch(/^\$2b\$10\$b+$/);
    expect(findUserHash(htpasswd, "alice", "htpasswd")).toBe("{SSHA}aaaa");
    expect(findUserHash(htpasswd, "ali", "htpasswd")).toBeUndefined();
    expect(findUserHash(caddy, "carol", "caddy")).toBeUndefined();
    expect(findUserHash("GARBAGE\n", "GARBAGE", "caddy")).toBeUndefined();
  });

  it("replaces one user's line and keeps every other line byte for byte", () => {
    const out = setUserLine(htpasswd, "alice", formatUserLine("alice", "{SSHA}new", "htpasswd"), "htpasswd");
    expect(out).toBe("alice:{SSHA}new\n# a comment\nbob:{SSHA}bbbb\n");
  });

  it("appends a new user, adding the missing final newline first", () => {
    expect(setUserLine("GARBAGE", "carol", "carol x", "caddy")).toBe("GARBAGE\ncarol x\n");
    expect(setUserLine("", "carol", "carol x", "caddy")).toBe("carol x\n");
    expect(setUserLine(caddy, "carol", "carol x", "caddy")).toBe(`${caddy}carol x\n`);
  });

  it("leaves one line per user when the file had duplicates", () => {
    expect(setUserLine("a:1\nb:2\na:3\n", "a", "a:9", "htpasswd")).toBe("a:9\nb:2\n");
  });
});
