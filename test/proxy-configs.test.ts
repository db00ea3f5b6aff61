// The shipped proxy configs are valid for the real programs (`caddy validate`, `nginx -t`), use exactly the
// documented environment variables, and keep their container defaults.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { requireBinary } from "./support/binaries.ts";
import { freePort } from "./support/ports.ts";
import { caddyGuardFile } from "../scripts/lib/caddy-user-guard.ts";
import { CADDYFILE, caddyUsersFile, httpRequest, NGINX_TEMPLATE_DIR, renderNginxConfig, startCaddy } from "./support/proxies.ts";
import { makeTempDir } from "./support/tmp.ts";

const run = promisify(execFile);
const caddy = requireBinary("caddy", "caddy");
const nginx = requireBinary("nginx", "nginx-light");
const envsubst = requireBinary("envsubst", "gettext-base");

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));
function tempDir(prefix: string): string {
  const { dir, cleanup } = makeTempDir(prefix);
  cleanups.push(cleanup);
  return dir;
}

function caddyEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const usersFile = join(dir, "users");
  const users = caddyUsersFile({ alice: "Xk3Lm8Qp2Wv7Zr4Tn9Bc5Hd6" }, 4);
  writeFileSync(usersFile, users, { mode: 0o600 });
  const guardFile = join(dir, "guard");
  writeFileSync(guardFile, caddyGuardFile(users), { mode: 0o600 });
  return { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: join(dir, "data"), XDG_CONFIG_HOME: join(dir, "config"), CADDY_USERS_FILE: usersFile, CADDY_GUARD_FILE: guardFile, ...extra };
}

async function caddyAdapt(env: NodeJS.ProcessEnv): Promise<any> {
  const { stdout } = await run(caddy!, ["adapt", "--adapter", "caddyfile", "--config", CADDYFILE], { env });
  return JSON.parse(stdout);
}

describe.skipIf(!caddy)("caddy/Caddyfile", () => {
  it("passes caddy validate with the container defaults and with a production domain", async () => {
    const dir = tempDir("caddy-validate");
    const variants: Record<string, string>[] = [{}, { CADDY_SITE_ADDRESS: "mlflow.example.com", PROXY_MAX_BODY_SIZE: "10GB" }];
    for (const extra of variants) {
      const { stdout, stderr } = await run(caddy!, ["validate", "--adapter", "caddyfile", "--config", CADDYFILE], { env: caddyEnv(dir, extra) });
      expect(stdout + stderr).toMatch(/Valid configuration/);
    }
  });

  it("defaults to :80, mlflow:5000, the compose secret, no body limit and the admin API on localhost:2019", async () => {
    const dir = tempDir("caddy-adapt");
    const env = caddyEnv(dir);
    delete env.CADDY_USERS_FILE;
    // The users file default is /run/secrets/proxy_users_caddy, which does not exist here: caddy must say so.
    await expect(run(caddy!, ["adapt", "--adapter", "caddyfile", "--config", CADDYFILE], { env })).rejects.toThrow(/\/run\/secrets\/proxy_users_caddy/);
    // So is the guard's: /run/secrets/proxy_users_caddy_guard (compose.yml's secret proxy_users_caddy_guard).
    const noGuard = caddyEnv(dir);
    delete noGuard.CADDY_GUARD_FILE;
    await expect(run(caddy!, ["adapt", "--adapter", "caddyfile", "--config", CADDYFILE], { env: noGuard })).rejects.toThrow(/\/run\/secrets\/proxy_users_caddy_guard/);

    const config = await caddyAdapt(caddyEnv(dir));
    expect(config.admin.listen).toBe("localhost:2019");
    const server = config.apps.http.servers.srv0;
    expect(server.listen).toEqual([":80"]);
    const text = JSON.stringify(server);
    expect(text).toContain('"dial":"mlflow:5000"');
    expect(text).not.toContain("max_size");
  });

  it("times out slow headers (10 s) and idle connections (2 min), but never a body or a response", async () => {
    const dir = tempDir("caddy-timeouts");
    const server = (await caddyAdapt(caddyEnv(dir))).apps.http.servers.srv0;
    expect(server.read_header_timeout).toBe(10e9);
    expect(server.idle_timeout).toBe(120e9);
    expect(server.read_timeout).toBeUndefined();
    expect(server.write_timeout).toBeUndefined();
  });

  // Issue 8, finding 2: ACME_EMAIL was passed to the container but the Caddyfile never used it.
  it("gives the ACME account ACME_EMAIL for a domain, and no e-mail when it is empty", async () => {
    const dir = tempDir("caddy-email");
    const issuers = async (email: string) => {
      const config = await caddyAdapt(caddyEnv(dir, { CADDY_SITE_ADDRESS: "mlflow.example.com", ACME_EMAIL: email }));
      return config.apps.tls.automation.policies.flatMap((policy: any) => policy.issuers ?? []);
    };
    const withEmail = await issuers("ops@example.com");
    expect(withEmail.length).toBeGreaterThan(0);
    for (const issuer of withEmail) expect(issuer.email).toBe("ops@example.com");
    for (const issuer of await issuers("")) expect(issuer.email).toBeUndefined();
  });

  it("sets HSTS only behind a `protocol https` matcher, and turns on HTTPS for a domain", async () => {
    const dir = tempDir("caddy-hsts");
    const config = await caddyAdapt(caddyEnv(dir, { CADDY_SITE_ADDRESS: "mlflow.example.com", PROXY_MAX_BODY_SIZE: "10GB" }));
    const server = config.apps.http.servers.srv0;
    expect(server.listen).toEqual([":443"]);
    const hsts = server.routes[0].handle[0].routes.filter((route: any) => JSON.stringify(route).includes("Strict-Transport-Security"));
    expect(hsts).toHaveLength(1);
    expect(hsts[0].match).toEqual([{ protocol: "https" }]);
    expect(JSON.stringify(server)).toContain('"max_size":10000000000');
  });

  it("keeps the admin API answering the container health check (wget http://127.0.0.1:2019/config/)", async () => {
    // Same form as the default localhost:2019, on a free port so it cannot collide with anything else.
    const adminPort = await freePort();
    const proxy = await startCaddy({ upstream: "http://127.0.0.1:9", usersFile: caddyUsersFile({ alice: "Xk3Lm8Qp2Wv7Zr4Tn9Bc5Hd6" }, 4), adminAddress: `localhost:${adminPort}` });
    try {
      const response = await httpRequest(`http://127.0.0.1:${adminPort}`, "/config/");
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body).apps.http.servers).toBeDefined();
    } finally {
      await proxy.stop();
    }
  });

  it("fails to start on an empty users file instead of running without users", async () => {
    const dir = tempDir("caddy-empty-users");
    const env = caddyEnv(dir);
    writeFileSync(env.CADDY_USERS_FILE!, "");
    await expect(run(caddy!, ["validate", "--adapter", "caddyfile", "--config", CADDYFILE], { env })).rejects.toThrow(/importing .*: EOF/);
  });

  it("fails to start on an empty guard file, and checks the guard before basicauth", async () => {
    const dir = tempDir("caddy-guard");
    const env = caddyEnv(dir);
    const config = JSON.stringify((await caddyAdapt(env)).apps.http.servers.srv0);
    const guard = config.indexOf("http.request.header.Authorization");
    const error = config.indexOf('"handler":"error"');
    const auth = config.indexOf('"handler":"authentication"');
    expect(guard).toBeGreaterThan(0);
    expect(error).toBeGreaterThan(guard);
    expect(auth).toBeGreaterThan(error);
    writeFileSync(env.CADDY_GUARD_FILE!, "");
    await expect(run(caddy!, ["validate", "--adapter", "caddyfile", "--config", CADDYFILE], { env })).rejects.toThrow(/importing .*: EOF/);
  });

  it("says basicauth (the spelling caddy 2.6 knows) and documents why", () => {
    const text = readFileSync(CADDYFILE, "utf8");
    expect(text).toMatch(/^\s*basicauth \{/m);
    expect(text).toMatch(/2\.6.*basicauth/s);
    expect(text).toMatch(/basic_auth/);
  });
});

describe.skipIf(!nginx || !envsubst)("nginx/templates/default.conf.template", () => {
  const template = readFileSync(join(NGINX_TEMPLATE_DIR, "default.conf.template"), "utf8");

  it("uses exactly the four documented variables", () => {
    const used = new Set([...template.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
    expect([...used].sort()).toEqual(["MLFLOW_UPSTREAM", "NGINX_HTPASSWD", "NGINX_LISTEN", "PROXY_MAX_BODY_SIZE"]);
  });

  it("renders like the image does (nginx's own $variables survive) and passes nginx -t", async () => {
    const dir = tempDir("nginx-t");
    const htpasswd = join(dir, "htpasswd");
    writeFileSync(htpasswd, "alice:{SSHA}x\n");
    const env = { PATH: process.env.PATH!, NGINX_LISTEN: "127.0.0.1:18080", MLFLOW_UPSTREAM: "127.0.0.1:5000", NGINX_HTPASSWD: htpasswd, PROXY_MAX_BODY_SIZE: "10GB" };
    await renderNginxConfig({ env, outputDir: join(dir, "conf.d"), entrypointScripts: false });
    const rendered = readFileSync(join(dir, "conf.d", "default.conf"), "utf8");
    expect(rendered).not.toMatch(/\$\{/);
    for (const variable of ["$http_host", "$remote_addr", "$scheme"]) expect(rendered).toContain(variable);
    expect(rendered).toContain("listen 127.0.0.1:18080;");
    expect(rendered).toContain("client_max_body_size 10000000000;");
    expect(rendered).toContain(`auth_basic_user_file ${htpasswd};`);
    // The same slow-client limits as the Caddyfile (test/proxy-slow-clients.test.ts shows them at work).
    expect(rendered).toMatch(/^\s*client_header_timeout 10s;/m);
    expect(rendered).toMatch(/^\s*keepalive_timeout 120s;/m);
    writeFileSync(
      join(dir, "nginx.conf"),
      `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n client_body_temp_path ${dir}/cbt;\n proxy_temp_path ${dir}/pt;\n include ${dir}/conf.d/*.conf;\n}\n`,
    );
    const { stderr } = await run(nginx!, ["-t", "-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"]);
    expect(stderr).toMatch(/syntax is ok/);
    expect(stderr).toMatch(/test is successful/);
  });

  it("leaves an unset variable in place, so nginx refuses to start instead of running with a hole", async () => {
    const dir = tempDir("nginx-unset");
    const env = { PATH: process.env.PATH!, NGINX_LISTEN: "127.0.0.1:18081", NGINX_HTPASSWD: join(dir, "h"), PROXY_MAX_BODY_SIZE: "0" };
    await renderNginxConfig({ env, outputDir: join(dir, "conf.d"), entrypointScripts: false });
    expect(readFileSync(join(dir, "conf.d", "default.conf"), "utf8")).toContain("server ${MLFLOW_UPSTREAM};");
    writeFileSync(join(dir, "nginx.conf"), `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n include ${dir}/conf.d/*.conf;\n}\n`);
    await expect(run(nginx!, ["-t", "-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"])).rejects.toThrow(/MLFLOW_UPSTREAM|host not found|invalid/);
  });
});
