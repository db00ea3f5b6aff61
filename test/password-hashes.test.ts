// The hashes bootstrap writes for the proxies: their format, and that the real caddy and nginx accept them
// (including passwords with a colon and non-ASCII characters) and reject anything else.
import bcrypt from "bcryptjs";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bcryptCostFor, caddyHash, FAST_HASH_MIN_GUESSES_LOG10, htpasswdHash, MIN_BCRYPT_COST, proxyHashes, sshaHash } from "../scripts/lib/password-hashes.ts";
import { GENERATED_GUESSES_LOG10, MIN_GUESSES_LOG10 } from "../scripts/lib/passwords.ts";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, httpRequest, startCaddy, startNginx, type RunningProxy } from "./support/proxies.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const PASSWORDS = ["Vf7Lq2Xr9Kp4Wm8Zt3Nb6Hc1", "with:colon and späce ✓", "x"];

describe("bcryptCostFor", () => {
  it("gives generated passwords the minimum cost and the weakest accepted password a real one", () => {
    expect(bcryptCostFor(GENERATED_GUESSES_LOG10)).toBe(MIN_BCRYPT_COST);
    expect(MIN_BCRYPT_COST).toBe(4);
    expect(bcryptCostFor(MIN_GUESSES_LOG10)).toBe(11);
    expect(bcryptCostFor(13)).toBe(7);
    expect(bcryptCostFor(15)).toBe(4);
    expect(bcryptCostFor(0)).toBe(12); // capped: a first login must stay imperceptible
  });

  it("never lowers the cost for a weaker password", () => {
    for (let log10 = 0; log10 < 80; log10 += 0.25) expect(bcryptCostFor(log10)).toBeGreaterThanOrEqual(bcryptCostFor(log10 + 0.25));
  });
});

describe("caddyHash", () => {
  it("is a bcrypt hash at the given cost that verifies the password and only it", () => {
    for (const cost of [4, 11]) {
      const hash = caddyHash(PASSWORDS[0], cost);
      expect(hash).toMatch(new RegExp(`^\\$2[aby]\\$${String(cost).padStart(2, "0")}\\$[./A-Za-z0-9]{53}$`));
      expect(bcrypt.compareSync(PASSWORDS[0], hash)).toBe(true);
      expect(bcrypt.compareSync(PASSWORDS[1], hash)).toBe(false);
    }
    expect(caddyHash(PASSWORDS[0])).toMatch(/^\$2[aby]\$04\$/);
    expect(caddyHash(PASSWORDS[0], 4)).not.toBe(caddyHash(PASSWORDS[0], 4));
  });
});

describe("htpasswdHash and proxyHashes", () => {
  it("use {SSHA} only where brute force is hopeless, bcrypt at the Caddy cost otherwise", () => {
    expect(htpasswdHash("x", FAST_HASH_MIN_GUESSES_LOG10)).toMatch(/^\{SSHA\}/);
    expect(htpasswdHash("x", GENERATED_GUESSES_LOG10)).toMatch(/^\{SSHA\}/);
    const chosen = proxyHashes(PASSWORDS[1], 13);
    expect(chosen.caddy).toMatch(/^\$2[aby]\$07\$/);
    expect(chosen.htpasswd).toMatch(/^\$2[aby]\$07\$/);
    expect(bcrypt.compareSync(PASSWORDS[1], chosen.htpasswd)).toBe(true);
    const generated = proxyHashes(PASSWORDS[0], GENERATED_GUESSES_LOG10);
    expect(generated.caddy).toMatch(/^\$2[aby]\$04\$/);
    expect(generated.htpasswd).toMatch(/^\{SSHA\}/);
  });
});

describe("sshaHash", () => {
  it("is {SSHA}: base64(SHA1(password + salt) + salt) with a fresh 16-byte salt", () => {
    for (const password of PASSWORDS) {
      const hash = sshaHash(password);
      expect(hash).toMatch(/^\{SSHA\}[A-Za-z0-9+/]+=*$/);
      const raw = Buffer.from(hash.slice("{SSHA}".length), "base64");
      expect(raw).toHaveLength(20 + 16);
      const salt = raw.subarray(20);
      expect(createHash("sha1").update(password).update(salt).digest().equals(raw.subarray(0, 20))).toBe(true);
      expect(createHash("sha1").update(`${password}!`).update(salt).digest().equals(raw.subarray(0, 20))).toBe(false);
    }
    expect(sshaHash("same")).not.toBe(sshaHash("same"));
  });
});

const hasCaddy = Boolean(requireBinary("caddy", "caddy"));
const hasNginx = Boolean(requireBinary("nginx", "nginx-light") && requireBinary("envsubst", "gettext-base"));

describe.skipIf(!hasCaddy || !hasNginx)("the real proxies", () => {
  let upstream: Upstream;
  let caddy: RunningProxy;
  let nginx: RunningProxy;
  const users = Object.fromEntries(PASSWORDS.map((password, i) => [`user${i}`, password]));

  beforeAll(async () => {
    upstream = await startUpstream();
    // user0 as a generated password gets it, the others as chosen ones: bcrypt in both files (nginx through libc crypt()).
    const hashes = Object.values(users).map((password, i) => proxyHashes(password, i === 0 ? GENERATED_GUESSES_LOG10 : 13));
    const caddyFile = Object.keys(users).map((user, i) => `${user} ${hashes[i].caddy}\n`).join("");
    const htpasswd = Object.keys(users).map((user, i) => `${user}:${hashes[i].htpasswd}\n`).join("");
    expect(htpasswd).toMatch(/^user0:\{SSHA\}/m);
    expect(htpasswd).toMatch(/^user1:\$2b\$07\$/m);
    [caddy, nginx] = await Promise.all([startCaddy({ upstream: upstream.hostPort, usersFile: caddyFile }), startNginx({ upstream: upstream.hostPort, usersFile: htpasswd })]);
  });
  afterAll(async () => {
    await Promise.all([caddy?.stop(), nginx?.stop()]);
    await upstream?.stop();
  });

  it("accept each user's own password and nothing else", async () => {
    for (const proxy of [caddy, nginx]) {
      for (const [user, password] of Object.entries(users)) {
        const ok = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization: basicAuth(user, password) } });
        expect(ok.status, `${proxy.kind} ${user}`).toBe(200);
        for (const wrong of [`${password} `, password.slice(0, -1), PASSWORDS.find((p) => p !== password)!]) {
          const denied = await httpRequest(proxy.url, "/api/2.0/mlflow/experiments/search", { headers: { authorization: basicAuth(user, wrong) } });
          expect(denied.status, `${proxy.kind} ${user} with a wrong password`).toBe(401);
        }
      }
    }
  });
});
