// The hashes bootstrap writes for the proxies: their format, and that the real caddy and nginx accept them
// (including passwords with a colon and non-ASCII characters) and reject anything else.
import bcrypt from "bcryptjs";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BCRYPT_COST, caddyHash, nginxHash } from "../scripts/lib/password-hashes.ts";
import { requireBinary } from "./support/binaries.ts";
import { basicAuth, httpRequest, startCaddy, startNginx, type RunningProxy } from "./support/proxies.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const PASSWORDS = ["Vf7Lq2Xr9Kp4Wm8Zt3Nb6Hc1", "with:colon and späce ✓", "x"];

describe("caddyHash", () => {
  it("is a bcrypt hash at BCRYPT_COST that verifies the password and only it", () => {
    expect(BCRYPT_COST).toBeGreaterThanOrEqual(10);
    const hash = caddyHash(PASSWORDS[0]);
    expect(hash).toMatch(new RegExp(`^\\$2[aby]\\$${String(BCRYPT_COST).padStart(2, "0")}\\$[./A-Za-z0-9]{53}$`));
    expect(bcrypt.compareSync(PASSWORDS[0], hash)).toBe(true);
    expect(bcrypt.compareSync(PASSWORDS[1], hash)).toBe(false);
    expect(caddyHash(PASSWORDS[0], 4)).not.toBe(caddyHash(PASSWORDS[0], 4));
  });
});

describe("nginxHash", () => {
  it("is {SSHA}: base64(SHA1(password + salt) + salt) with a fresh 16-byte salt", () => {
    for (const password of PASSWORDS) {
      const hash = nginxHash(password);
      expect(hash).toMatch(/^\{SSHA\}[A-Za-z0-9+/]+=*$/);
      const raw = Buffer.from(hash.slice("{SSHA}".length), "base64");
      expect(raw).toHaveLength(20 + 16);
      const salt = raw.subarray(20);
      expect(createHash("sha1").update(password).update(salt).digest().equals(raw.subarray(0, 20))).toBe(true);
      expect(createHash("sha1").update(`${password}!`).update(salt).digest().equals(raw.subarray(0, 20))).toBe(false);
    }
    expect(nginxHash("same")).not.toBe(nginxHash("same"));
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
    const caddyFile = Object.entries(users).map(([user, password]) => `${user} ${caddyHash(password)}\n`).join("");
    const htpasswd = Object.entries(users).map(([user, password]) => `${user}:${nginxHash(password)}\n`).join("");
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
