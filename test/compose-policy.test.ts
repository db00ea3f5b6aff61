// The stack's rules for its Compose files, checked on the files as merged for each way users start it, and each
// check shown to fail on a deliberately broken copy (so none of them passes vacuously).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkAll,
  checkBindSources,
  checkCaddyVolumes,
  checkDependsOnConditions,
  checkDollarEscaping,
  checkFileEnvMatchesSecrets,
  checkHardening,
  checkHealthchecks,
  checkHealthcheckVariables,
  checkInterpolationGuards,
  checkLocalPorts,
  checkMinioEntrypoints,
  checkMlflowHealthcheckTools,
  checkNetworkIsolation,
  checkNoContainerName,
  checkNoFrozenImages,
  checkNoSecretValues,
  checkOneOffsAdopted,
  checkPgIsReadyTcp,
  checkPinnedImages,
  checkPostgresVolume,
  checkProdPorts,
  checkRequiredServices,
  checkRestartPolicies,
  checkRootKeyHolders,
  checkSecretsAreFiles,
  COMBINATIONS,
  type ComposeDoc,
  environmentOf,
  envExample,
  interpolate,
  interpolateString,
  loadCompose,
  loadStack,
  mergeCompose,
  networksOf,
  parseCompose,
  ROOT,
  secretTarget,
} from "./support/compose.ts";
import { makeTempDir } from "./support/tmp.ts";
import { composeOverrideFromReadme } from "./stack/readme.ts";

const env = envExample();
const composeVariables = new Set(Object.keys(env));
const resolved = (files: string[]): ComposeDoc => interpolate(loadStack(files), env);
const local = () => resolved(["compose.yml"]);
const prod = () => resolved(["compose.yml", "compose.prod.yml"]);
const nginx = () => resolved(["compose.yml", "compose.nginx.yml"]);

/** Runs compose.yml's createbuckets script with a stand-in mc that logs its calls and what it read on stdin. */
function runCreatebuckets({ fails, userInfo = "", withoutMlflowSecret = false }: { fails: number; userInfo?: string; withoutMlflowSecret?: boolean }) {
  const script = local().services.createbuckets.command.join("\n");
  const { dir, cleanup } = makeTempDir("createbuckets");
  try {
    // alias set fails until its counter runs out; `admin user info` prints USER_INFO; stdin of each call is kept.
    writeFileSync(
      join(dir, "mc"),
      [
        "#!/bin/sh",
        'call="$*"; case "$call" in "admin policy create "*) call="admin policy create $4 $5 POLICY"; cp "$6" "$DIR/policy.json" ;; esac',
        'echo "$call" >>"$LOG"',
        'case "$1 $2 $3" in "alias set"* | "admin user add") cat >"$DIR/stdin.$(echo "$call" | tr " /:" "___")" ;; esac',
        'if [ "$1" = alias ]; then n=$(cat "$FAILS"); [ "$n" -le 0 ] || { echo $((n - 1)) >"$FAILS"; exit 1; }; fi',
        'if [ "$1 $2 $3" = "admin user info" ]; then printf "%s" "$USER_INFO"; fi',
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    writeFileSync(join(dir, "sleep"), "#!/bin/sh\n", { mode: 0o755 });
    mkdirSync(join(dir, "run/secrets"), { recursive: true });
    // As bootstrap writes them: no final newline (the root one), and with one (edited by hand).
    writeFileSync(join(dir, "run/secrets/minio_root_password"), "root-secret-password");
    if (!withoutMlflowSecret) writeFileSync(join(dir, "run/secrets/mlflow_s3_secret_key"), "mlflow-secret-key\n");
    writeFileSync(join(dir, "fails"), String(fails));
    writeFileSync(join(dir, "log"), "");
    const r = spawnSync("sh", ["-c", script.replaceAll("/run/secrets/", `${dir}/run/secrets/`)], {
      env: {
        PATH: `${dir}:${process.env.PATH}`,
        DIR: dir,
        TMPDIR: dir,
        LOG: join(dir, "log"),
        FAILS: join(dir, "fails"),
        USER_INFO: userInfo,
        MINIO_ROOT_USER: "mlflow",
        MLFLOW_BUCKET: "mlflow",
        MLFLOW_S3_ACCESS_KEY: "mlflow-artifacts",
      },
      encoding: "utf8",
    });
    const stdin: Record<string, string> = {};
    for (const name of readdirSync(dir).filter((n) => n.startsWith("stdin."))) {
      stdin[name.slice("stdin.".length).replace("alias_set_minio_http___minio_9000", "alias set minio http://minio:9000").replace("admin_user_add_minio", "admin user add minio")] =
        readFileSync(join(dir, name), "utf8");
    }
    const policy = existsSync(join(dir, "policy.json")) ? readFileSync(join(dir, "policy.json"), "utf8") : "{}";
    return { code: r.status, stderr: r.stderr, calls: readFileSync(join(dir, "log"), "utf8").trim().split("\n").filter(Boolean), stdin, policy };
  } finally {
    cleanup();
  }
}

describe("policy holds for every combination users run", () => {
  it.each(COMBINATIONS.map((files) => [files.join(" + "), files]))("%s", (_name, files) => {
    const doc = resolved(files as string[]);
    expect(checkRequiredServices(doc, ["db", "minio", "createbuckets", "mlflow", "proxy"])).toEqual([]);
    expect(checkAll(doc)).toEqual([]);
  });

  it("raw files: $ escaped as $$ for the container, every ${VAR} guarded or defaulted", () => {
    for (const file of ["compose.yml", "compose.prod.yml", "compose.nginx.yml"]) {
      const raw = loadCompose(file);
      expect(checkDollarEscaping(raw, composeVariables), file).toEqual([]);
      expect(checkInterpolationGuards(raw), file).toEqual([]);
    }
    for (const files of COMBINATIONS) expect(checkHealthcheckVariables(loadStack(files)), files.join(" + ")).toEqual([]);
  });

  it("every variable the Compose files read is documented in .env.example", () => {
    const used = new Set<string>();
    for (const file of ["compose.yml", "compose.prod.yml", "compose.nginx.yml"]) {
      const text = readFileSync(resolve(ROOT, file), "utf8").replace(/\$\$/g, "");
      for (const match of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) used.add(match[1]);
    }
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((name) => !composeVariables.has(name))).toEqual([]);
  });

  it("compose.yml publishes only the proxy, on loopback, at PROXY_PORT", () => {
    expect(checkLocalPorts(local())).toEqual([]);
    expect(checkLocalPorts(nginx())).toEqual([]);
    const port = local().services.proxy.ports[0];
    expect(port).toBe(`127.0.0.1:${env.PROXY_PORT}:80`);
  });

  it("compose.prod.yml publishes exactly 80, 443 and 443/udp and nothing of compose.yml's loopback port", () => {
    expect(checkProdPorts(prod())).toEqual([]);
  });

  it("compose.yml runs with zero edits after bootstrap: every required variable is in .env.example", () => {
    expect(() => local()).not.toThrow();
    // ...and fails with the bootstrap hint when .env is missing.
    expect(() => interpolate(loadStack(["compose.yml"]), {})).toThrow(/run npm run bootstrap first/);
  });

  it("production requires DOMAIN and serves it with automatic HTTPS", () => {
    const doc = prod();
    expect(environmentOf(doc.services.proxy).CADDY_SITE_ADDRESS).toBe(env.DOMAIN);
    expect(() => interpolate(loadStack(["compose.yml", "compose.prod.yml"]), { ...env, DOMAIN: "" })).toThrow(/DOMAIN/);
    for (const name of ["db", "minio", "mlflow", "proxy"]) {
      expect(doc.services[name].restart, name).toBe("unless-stopped");
      expect(doc.services[name].logging?.options?.["max-size"], name).toBeTruthy();
      expect(doc.services[name].deploy?.resources?.limits?.memory, name).toBeTruthy();
    }
    expect(doc.services.createbuckets.restart).toBe("no"); // a one-off job must not be restarted after it exits 0
  });

  it("the nginx overlay replaces the proxy completely: no Caddy mounts, secret or settings are left", () => {
    const proxy = nginx().services.proxy;
    expect(proxy.image).toMatch(/^nginx:\d+\.\d+\.\d+-alpine$/);
    expect(proxy.volumes.some((v: string) => v.includes("caddy") || v.startsWith("caddy-"))).toBe(false);
    expect(proxy.secrets).toEqual(["proxy_users_htpasswd"]);
    const proxyEnv = environmentOf(proxy);
    expect(Object.keys(proxyEnv).sort()).toEqual(["MLFLOW_UPSTREAM", "NGINX_HTPASSWD", "NGINX_LISTEN", "PROXY_MAX_BODY_SIZE"]);
    // The users file nginx reads is not the secret itself (workers run as uid 101 and cannot read a 0600 secret).
    expect(proxy.secrets.map(secretTarget)).not.toContain(proxyEnv.NGINX_HTPASSWD);
    expect(proxy.healthcheck.test.join(" ")).not.toMatch(/2019|wget/);
  });

  // Issue 8, finding 1: the README advised publishing 127.0.0.1:9000 alone, which Docker drops silently for a container
  // that is only on an internal network. The stack test writes this very block as compose.override.yml and runs smoke's
  // bucket check through it.
  it("the README's compose.override.yml publishes MinIO on loopback through a network that is not internal", () => {
    const override = parseCompose(composeOverrideFromReadme(readFileSync(resolve(ROOT, "README.md"), "utf8")));
    const doc = interpolate(mergeCompose(loadStack(["compose.yml"]), override), env) as ComposeDoc;
    const minio = doc.services.minio;
    expect(minio.ports).toEqual(["127.0.0.1:9000:9000"]);
    const networks = networksOf(minio);
    expect(networks).toContain("backend");
    expect(networks.filter((name) => !doc.networks?.[name]?.internal).length).toBeGreaterThan(0);
    // Only minio is on that network: nothing else gains a route to it.
    for (const [name, service] of Object.entries(doc.services as Record<string, any>))
      if (name !== "minio") expect(networksOf(service).filter((n) => !["backend", "frontend", "default"].includes(n)), name).toEqual([]);
  });

  // Issue 8, findings 3 and 6.
  it("production: the proxy is healthy only when HTTPS for DOMAIN works, not merely when Caddy's admin API answers", () => {
    const proxy = prod().services.proxy;
    const test = proxy.healthcheck.test.join(" ");
    expect(test).toContain("https://${CADDY_SITE_ADDRESS}/health");
    expect(test).not.toContain(":2019");
    expect(environmentOf(proxy).CADDY_SITE_ADDRESS).toBe(env.DOMAIN);
    // ...and DOMAIN resolves to the container itself, so the check needs no DNS and no hairpin.
    expect(proxy.extra_hosts).toEqual([`${env.DOMAIN}:127.0.0.1`]);
    expect(local().services.proxy.extra_hosts).toBeUndefined();
  });

  it("mlflow: no job-runner processes, and room in production for a 1 GiB artifact in flight", () => {
    expect(environmentOf(local().services.mlflow).MLFLOW_SERVER_ENABLE_JOB_EXECUTION).toBe("false");
    const limit = String(prod().services.mlflow.deploy.resources.limits.memory);
    const bytes = Number(/^(\d+)g$/.exec(limit)?.[1]) * 1024 ** 3;
    // Seen: 4.46 GiB at the peak of a 1 GiB upload (with the job runner still on).
    expect(bytes).toBeGreaterThan(4.46 * 1024 ** 3);
  });

  it("the mlflow service is built from ./mlflow with the .env version, and its image tag follows it", () => {
    const mlflow = local().services.mlflow;
    expect(mlflow.build.context).toBe("./mlflow");
    expect(mlflow.build.args.MLFLOW_VERSION).toBe(env.MLFLOW_VERSION);
    expect(mlflow.image).toBe(`mlflow-stack/mlflow:${env.MLFLOW_VERSION}`);
    expect(mlflow.pull_policy).toBe("build"); // never pulled from a registry under that name
    expect(mlflow.networks).toEqual(expect.arrayContaining(["backend", "frontend"]));
  });

  it("the root password file is the mounted secret, in the server and the bucket job; MLflow has its own key", () => {
    const doc = local();
    const minio = doc.services.minio;
    expect(environmentOf(minio).MINIO_ROOT_PASSWORD_FILE).toBe("/run/secrets/minio_root_password");
    expect(minio.secrets.map(secretTarget)).toContain("/run/secrets/minio_root_password");
    expect(doc.services.createbuckets.command.join("\n")).toContain("/run/secrets/minio_root_password");
    const mlflowEnv = environmentOf(doc.services.mlflow);
    expect(mlflowEnv.AWS_SECRET_ACCESS_KEY_FILE).toBe("/run/secrets/mlflow_s3_secret_key");
    expect(mlflowEnv.AWS_ACCESS_KEY_ID).toBe(env.MLFLOW_S3_ACCESS_KEY);
    expect(mlflowEnv.AWS_ACCESS_KEY_ID).not.toBe(env.MINIO_ROOT_USER);
    expect(environmentOf(doc.services.createbuckets).MLFLOW_S3_ACCESS_KEY).toBe(env.MLFLOW_S3_ACCESS_KEY);
  });

  // Issue 9, finding 4: MLflow used the root key. Only the server and the bucket job hold it, in every combination.
  it("MLflow does not mount the S3 root key (only minio and createbuckets do)", () => {
    for (const files of COMBINATIONS) {
      const doc = resolved(files);
      expect(checkRootKeyHolders(doc), files.join(" + ")).toEqual([]);
      const holders = Object.entries(doc.services as Record<string, any>)
        .filter(([, service]) => (service.secrets ?? []).map((s: unknown) => (typeof s === "string" ? s : (s as { source: string }).source)).includes("minio_root_password"))
        .map(([name]) => name);
      expect(holders.sort()).toEqual(["createbuckets", "minio"]);
      expect(doc.services.mlflow.secrets).toEqual(["postgres_password", "mlflow_s3_secret_key"]);
    }
  });

  // Issue 9, finding 1: MinIO's community images get no security fixes (CVE-2025-62506 is fixed only in source).
  it("no frozen MinIO image anywhere: compose files, platform Dockerfiles; the server and the bucket job share Silo", () => {
    for (const files of COMBINATIONS) expect(checkNoFrozenImages(resolved(files)), files.join(" + ")).toEqual([]);
    const doc = local();
    expect(doc.services.minio.image).toMatch(/^pgsty\/silo:RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/);
    expect(doc.services.createbuckets.image).toBe(doc.services.minio.image); // mc ships in the server image
    for (const file of ["createbuckets/Dockerfile", "paas/Dockerfile", "mlflow/Dockerfile", "caddy/Dockerfile", "app.json", "heroku.yml", "createbuckets/railway.json", "paas/railway.json"]) {
      expect(readFileSync(resolve(ROOT, file), "utf8"), file).not.toMatch(/quay\.io\/minio|minio\/mc:|minio\/minio:/);
    }
    expect(readFileSync(resolve(ROOT, "createbuckets/Dockerfile"), "utf8")).toContain(`FROM ${doc.services.minio.image}`);
  });

  // Issue 9, finding 4: default capabilities, writable root filesystems, no no-new-privileges, no pids or CPU limits.
  it("least privilege in every combination: capabilities, no-new-privileges, pids, read-only root, restart", () => {
    for (const files of COMBINATIONS) {
      const doc = resolved(files);
      expect(checkHardening(doc), files.join(" + ")).toEqual([]);
      expect(checkRestartPolicies(doc), files.join(" + ")).toEqual([]);
    }
    const doc = local();
    expect(doc.services.db.cap_add.sort()).toEqual(["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]);
    expect(doc.services.minio.cap_add).toEqual(["DAC_OVERRIDE"]);
    expect(doc.services.createbuckets.cap_add).toEqual(["DAC_OVERRIDE"]);
    expect(doc.services.mlflow.cap_add).toEqual(["DAC_OVERRIDE"]);
    expect(doc.services.proxy.cap_add.sort()).toEqual(["DAC_OVERRIDE", "NET_BIND_SERVICE"]);
    // MLflow is the one writable root filesystem (uploads spool to temporary files), and says so.
    expect(doc.services.mlflow.read_only).toBe(false);
    for (const name of ["db", "minio", "createbuckets", "proxy"]) expect(doc.services[name].read_only, name).toBe(true);
    // Restart policies in the base file, not only in production.
    for (const name of ["db", "minio", "mlflow", "proxy"]) expect(loadCompose("compose.yml").services[name].restart, name).toBe("unless-stopped");
    expect(loadCompose("compose.yml").services.createbuckets.restart).toBe("no");
  });

  it("read-only services get a tmpfs where their image writes: PostgreSQL's socket dir, nginx's conf.d, users copy, temp and pid", () => {
    const tmpfsTargets = (service: any) => (service.tmpfs ?? []).map((t: string) => t.split(":")[0]);
    expect(tmpfsTargets(local().services.db)).toEqual(expect.arrayContaining(["/var/run/postgresql", "/tmp"]));
    expect(tmpfsTargets(local().services.createbuckets)).toContain("/tmp"); // MC_CONFIG_DIR and the policy file
    expect(environmentOf(local().services.createbuckets).MC_CONFIG_DIR).toMatch(/^\/tmp\//);
    const proxy = nginx().services.proxy;
    expect(tmpfsTargets(proxy)).toEqual(expect.arrayContaining(["/etc/nginx/conf.d", "/etc/nginx/auth", "/var/cache/nginx", "/run", "/tmp"]));
    const htpasswd = String(environmentOf(proxy).NGINX_HTPASSWD);
    expect(tmpfsTargets(proxy).some((t: string) => htpasswd.startsWith(`${t}/`)), htpasswd).toBe(true);
    expect(proxy.cap_add.sort()).toEqual(["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"]);
    // Caddy reads its secrets (and the guard file the proxy auth work adds) under /run/secrets: no tmpfs hides them.
    for (const doc of [local(), prod()]) expect(tmpfsTargets(doc.services.proxy).filter((t: string) => "/run/secrets".startsWith(t))).toEqual([]);
  });

  it("production caps CPU (at most 2 per service, for a 2-CPU server) and memory, next to compose.yml's pids limits", () => {
    const doc = prod();
    for (const name of ["db", "minio", "createbuckets", "mlflow", "proxy"]) {
      const cpus = Number(doc.services[name].deploy?.resources?.limits?.cpus);
      expect(cpus, name).toBeGreaterThan(0);
      expect(cpus, name).toBeLessThanOrEqual(2);
      expect(doc.services[name].deploy?.resources?.limits?.pids, name).toBeGreaterThan(0);
      expect(doc.services[name].pids_limit, name).toBeUndefined();
    }
  });

  it("createbuckets is idempotent and keeps the bucket private", () => {
    const job = local().services.createbuckets;
    const script = job.command.join("\n");
    expect(job.entrypoint).toEqual(["/bin/sh", "-c"]);
    expect(script).toMatch(/set -eu/);
    expect(script).toMatch(/mc mb --ignore-existing "minio\/\$MLFLOW_BUCKET"/);
    expect(script).toMatch(/mc anonymous set private "minio\/\$MLFLOW_BUCKET"/);
    expect(environmentOf(job).MLFLOW_BUCKET).toBe(env.MLFLOW_BUCKET);
    // MLflow's user: keys on stdin, a policy for the bucket alone.
    expect(script).toMatch(/printf '%s\\n%s\\n' "\$MLFLOW_S3_ACCESS_KEY" "\$mlflow_secret" \| mc admin user add minio\n/);
    expect(script).toMatch(/mc admin policy create minio mlflow-bucket "\$policy"/);
    expect(script).toMatch(/mc admin policy attach minio mlflow-bucket --user "\$MLFLOW_S3_ACCESS_KEY"/);
  });

  // Issue 8: `docker compose restart` starts createbuckets while MinIO restarts; `mc alias set` then fails at once, and
  // the following `up --wait` stopped on "createbuckets didn't complete successfully".
  it("createbuckets waits for the server: retries mc alias set for a while, then gives up with exit 1", async () => {
    const late = runCreatebuckets({ fails: 3 });
    expect(late.code).toBe(0);
    expect(late.calls.filter((c) => c.startsWith("alias set"))).toHaveLength(4);
    expect(late.calls.slice(4)).toEqual([
      "mb --ignore-existing minio/mlflow",
      "anonymous set private minio/mlflow",
      "admin policy create minio mlflow-bucket POLICY",
      "admin user add minio",
      "admin user info minio mlflow-artifacts",
      "admin policy attach minio mlflow-bucket --user mlflow-artifacts",
    ]);
    const never = runCreatebuckets({ fails: 1000 });
    expect(never.code).toBe(1);
    expect(never.calls.filter((c) => c.startsWith("alias set"))).toHaveLength(30);
    expect(never.calls.some((c) => c.startsWith("mb"))).toBe(false);
  });

  // Issue 9: MLflow's key may use its bucket and nothing else; the keys travel on stdin.
  it("createbuckets gives MLflow's key a policy for MLFLOW_BUCKET alone, keys on stdin, and attaches it once", () => {
    const first = runCreatebuckets({ fails: 0 });
    expect(first.code).toBe(0);
    expect(first.stdin["alias set minio http://minio:9000"]).toBe("mlflow\nroot-secret-password\n");
    expect(first.stdin["admin user add minio"]).toBe("mlflow-artifacts\nmlflow-secret-key\n");
    for (const call of first.calls) expect(call).not.toMatch(/secret-password|secret-key/);
    const policy = JSON.parse(first.policy);
    const resources = policy.Statement.flatMap((s: { Resource: string[] }) => s.Resource);
    expect(resources.sort()).toEqual(["arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"]);
    const actions = policy.Statement.flatMap((s: { Action: string[] }) => s.Action);
    expect(actions).toEqual(expect.arrayContaining(["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]));
    expect(actions.filter((a: string) => /\*|admin:|CreateBucket|DeleteBucket|PutBucketPolicy/.test(a))).toEqual([]);
    for (const statement of policy.Statement) expect(statement.Effect).toBe("Allow");
    // Already attached (a second start): no second attach, which the server would refuse.
    const again = runCreatebuckets({ fails: 0, userInfo: "AccessKey: mlflow-artifacts\nStatus: enabled\nPolicyName: mlflow-bucket\n" });
    expect(again.code).toBe(0);
    expect(again.calls.some((c) => c.startsWith("admin policy attach"))).toBe(false);
    // Without MLflow's secret (an install from before it existed), a one-line error that says what to run.
    const missing = runCreatebuckets({ fails: 0, withoutMlflowSecret: true });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/secrets\/mlflow_s3_secret_key is missing: run npm run bootstrap/);
  });

  it("the Caddyfile reads the users file and the upstream where compose.yml puts them", () => {
    const caddyfile = readFileSync(resolve(ROOT, "caddy/Caddyfile"), "utf8");
    const proxy = local().services.proxy;
    const proxyEnv = environmentOf(proxy);
    const placeholder = (name: string) => {
      const match = new RegExp(`\\{\\$${name}:([^}]*)\\}`).exec(caddyfile);
      return proxyEnv[name] ?? match?.[1];
    };
    expect(proxy.secrets.map(secretTarget)).toContain(placeholder("CADDY_USERS_FILE"));
    expect(proxy.secrets.map(secretTarget)).toContain(placeholder("CADDY_GUARD_FILE"));
    expect(placeholder("MLFLOW_UPSTREAM")).toBe("mlflow:5000");
    expect(proxy.volumes).toContain("./caddy/Caddyfile:/etc/caddy/Caddyfile:ro");
    // The health check reads the admin API: it must stay on, at the address the check uses.
    expect(caddyfile).not.toMatch(/^\s*admin\s+off/m);
    expect(proxy.healthcheck.test.join(" ")).toContain(`http://${placeholder("CADDY_ADMIN_ADDRESS")}/config/`);
  });

  it("the nginx overlay's mounts exist and its entrypoint scripts are executable", () => {
    const proxy = nginx().services.proxy;
    for (const volume of proxy.volumes as string[]) {
      const [source, target] = volume.split(":");
      if (target.startsWith("/docker-entrypoint.d/") && target.endsWith(".sh")) {
        // The image's entrypoint skips non-executable *.sh files (with only a log line).
        expect(statSync(resolve(ROOT, source)).mode & 0o111, source).not.toBe(0);
      }
    }
  });
});

describe("the mlflow image matches compose.yml", () => {
  const dockerfile = readFileSync(resolve(ROOT, "mlflow/Dockerfile"), "utf8");

  it("builds FROM the official image at the MLFLOW_VERSION build argument, defaulting to .env.example's", () => {
    const argIndex = dockerfile.search(/^ARG MLFLOW_VERSION=/m);
    const fromIndex = dockerfile.search(/^FROM /m);
    expect(argIndex).toBeGreaterThanOrEqual(0);
    expect(argIndex).toBeLessThan(fromIndex); // an ARG used in FROM must come before it
    expect(/^ARG MLFLOW_VERSION=(\S+)/m.exec(dockerfile)?.[1]).toBe(env.MLFLOW_VERSION);
    expect(dockerfile).toMatch(/^FROM ghcr\.io\/mlflow\/mlflow:v\$\{MLFLOW_VERSION\}$/m);
  });

  it("pins its Python packages exactly and installs the PostgreSQL driver and the S3 client", () => {
    const requirements = readFileSync(resolve(ROOT, "mlflow/requirements.txt"), "utf8")
      .split("\n")
      .map((line) => line.replace(/#.*/, "").trim())
      .filter(Boolean);
    for (const line of requirements) expect(line).toMatch(/^[A-Za-z0-9_.-]+==\d+(\.\d+)+$/);
    const names = requirements.map((line) => line.split("==")[0].toLowerCase());
    expect(names).toEqual(expect.arrayContaining(["psycopg2-binary", "boto3"]));
  });

  it("has the entrypoint and no HEALTHCHECK of its own (compose.yml defines it)", () => {
    expect(dockerfile).toMatch(/^ENTRYPOINT \["docker-entrypoint\.sh"\]$/m);
    expect(dockerfile).not.toMatch(/^HEALTHCHECK/m);
    expect(statSync(resolve(ROOT, "mlflow/docker-entrypoint.sh")).mode & 0o111).not.toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Each check fails on a broken copy of the real (merged, interpolated) document.

const mutate = (doc: ComposeDoc, change: (d: ComposeDoc) => void): ComposeDoc => {
  const copy = structuredClone(doc);
  change(copy);
  return copy;
};

describe("each policy check catches the mistake it is for", () => {
  it("a missing service", () => {
    expect(checkRequiredServices(mutate(local(), (d) => delete d.services.createbuckets), ["createbuckets"])).toHaveLength(1);
  });

  it("a long-running service without a healthcheck, or one without a timeout", () => {
    expect(checkHealthchecks(mutate(local(), (d) => delete d.services.minio.healthcheck))).toEqual([
      "minio: long-running service without a healthcheck",
    ]);
    expect(checkHealthchecks(mutate(local(), (d) => (d.services.proxy.healthcheck = { test: ["NONE"] })))).toHaveLength(1);
    expect(checkHealthchecks(mutate(local(), (d) => delete d.services.minio.healthcheck.timeout))).toEqual([
      "minio: healthcheck without a timeout",
    ]);
  });

  it("depends_on without the right condition", () => {
    expect(checkDependsOnConditions(mutate(local(), (d) => (d.services.mlflow.depends_on.db.condition = "service_started")))).toHaveLength(1);
    expect(
      checkDependsOnConditions(mutate(local(), (d) => (d.services.mlflow.depends_on.createbuckets.condition = "service_healthy"))),
    ).not.toEqual([]);
    expect(checkDependsOnConditions(mutate(local(), (d) => (d.services.proxy.depends_on = ["mlflow"])))).toHaveLength(1);
  });

  it("a one-off job nothing waits for (up --wait would exit 1 when it finishes)", () => {
    const orphan = mutate(local(), (d) => delete d.services.mlflow.depends_on.createbuckets);
    expect(checkOneOffsAdopted(orphan)).toHaveLength(1);
  });

  it.each(["postgres:18", "postgres:latest", "caddy:2.11-alpine", "quay.io/minio/minio", "nginx:stable-alpine"])(
    "an image that is not pinned exactly: %s",
    (image) => {
      expect(checkPinnedImages(mutate(local(), (d) => (d.services.db.image = image)))).toHaveLength(1);
    },
  );

  it("accepts the pins we use (exact versions, variants, MinIO RELEASE stamps, digests)", () => {
    for (const image of ["postgres:18.6-trixie", "nginx:1.30.5-alpine", "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z", "x/y@sha256:abc"]) {
      expect(checkPinnedImages(mutate(local(), (d) => (d.services.db.image = image))), image).toEqual([]);
    }
  });

  it("a secret that is not a file under ./secrets/, or not declared", () => {
    expect(checkSecretsAreFiles(mutate(local(), (d) => (d.secrets.postgres_password = { environment: "PW" })))).toHaveLength(1);
    expect(checkSecretsAreFiles(mutate(local(), (d) => (d.secrets.postgres_password.file = "./pw.txt")))).toHaveLength(1);
    expect(checkSecretsAreFiles(mutate(local(), (d) => d.services.db.secrets.push("nope")))).toHaveLength(1);
  });

  it("MinIO's silent fallback: a *_FILE path that is not the mounted secret", () => {
    const wrongPath = mutate(local(), (d) => (d.services.minio.environment.MINIO_ROOT_PASSWORD_FILE = "/run/secrets/minio_password"));
    expect(checkFileEnvMatchesSecrets(wrongPath)).toEqual([
      "minio: MINIO_ROOT_PASSWORD_FILE=/run/secrets/minio_password is not the path of a secret mounted in this service",
    ]);
    const notMounted = mutate(local(), (d) => (d.services.minio.secrets = []));
    expect(checkFileEnvMatchesSecrets(notMounted)).toHaveLength(1);
    const noFile = mutate(local(), (d) => delete d.services.minio.environment.MINIO_ROOT_PASSWORD_FILE);
    expect(checkFileEnvMatchesSecrets(noFile)).toEqual([
      "minio: MinIO without MINIO_ROOT_PASSWORD_FILE would run with the default minioadmin credentials",
    ]);
  });

  it("Postgres' exclusive pair: POSTGRES_PASSWORD next to POSTGRES_PASSWORD_FILE", () => {
    const both = mutate(local(), (d) => (d.services.db.environment.POSTGRES_PASSWORD = "x"));
    expect(checkFileEnvMatchesSecrets(both)).toEqual(["db: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (exclusive)"]);
  });

  it("a secret value in environment, command or healthcheck", () => {
    expect(checkNoSecretValues(mutate(local(), (d) => (d.services.mlflow.environment.AWS_SECRET_ACCESS_KEY = "abc")))).toHaveLength(1);
    expect(
      checkNoSecretValues(mutate(local(), (d) => (d.services.mlflow.environment.MLFLOW_BACKEND_STORE_URI = "postgresql://u:pw@db/m"))),
    ).toHaveLength(1);
    expect(checkNoSecretValues(mutate(local(), (d) => (d.services.proxy.environment.USERS = "admin $2a$14$abcdefghijkl")))).toHaveLength(1);
    const argvKeys = mutate(local(), (d) => (d.services.createbuckets.command = ["mc alias set minio http://minio:9000 mlflow s3cret"]));
    expect(checkNoSecretValues(argvKeys)).toEqual(["createbuckets: mc alias set gets keys as arguments; pipe them on stdin"]);
    const mcHost = mutate(local(), (d) => (d.services.createbuckets.environment.MC_HOST_minio = "http://mlflow:s3cret@minio:9000"));
    expect(checkNoSecretValues(mcHost)).not.toEqual([]);
  });

  it("PostgreSQL 18 with its volume at /var/lib/postgresql/data, and 17 at /var/lib/postgresql", () => {
    const oldLayout = mutate(local(), (d) => (d.services.db.volumes = ["db-data:/var/lib/postgresql/data"]));
    expect(checkPostgresVolume(oldLayout)).toEqual([
      "db: PostgreSQL 18 needs its data volume at /var/lib/postgresql",
      "db: PostgreSQL 18 refuses to start with a volume at /var/lib/postgresql/data",
    ]);
    const pg17 = mutate(local(), (d) => (d.services.db.image = "postgres:17.9-trixie"));
    expect(checkPostgresVolume(pg17)).toEqual(["db: PostgreSQL 17 needs its data volume at /var/lib/postgresql/data"]);
  });

  it("pg_isready over the unix socket", () => {
    const socket = mutate(local(), (d) => (d.services.db.healthcheck.test = ["CMD-SHELL", 'pg_isready -U "$POSTGRES_USER"']));
    expect(checkPgIsReadyTcp(socket)).toEqual(["db: pg_isready must check over TCP (-h 127.0.0.1)"]);
  });

  it("curl or wget in the MLflow healthcheck, or one that only asks /health (no database involved)", () => {
    const curl = mutate(local(), (d) => (d.services.mlflow.healthcheck.test = ["CMD", "curl", "-f", "http://127.0.0.1:5000/api/2.0/mlflow/experiments/search"]));
    expect(checkMlflowHealthcheckTools(curl)).toEqual(["mlflow: the MLflow image has no curl or wget"]);
    const health = mutate(local(), (d) => (d.services.mlflow.healthcheck.test = ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]));
    expect(checkMlflowHealthcheckTools(health)).toEqual(["mlflow: healthcheck should call an API that reads the database (/health does not)"]);
  });

  it("Caddy without /data or /config", () => {
    const noData = mutate(local(), (d) => (d.services.proxy.volumes = ["./caddy/Caddyfile:/etc/caddy/Caddyfile:ro"]));
    expect(checkCaddyVolumes(noData)).toEqual(["proxy: caddy needs a volume at /data", "proxy: caddy needs a volume at /config"]);
  });

  it("an unescaped $ for the container in a raw healthcheck or command", () => {
    const raw = loadCompose("compose.yml");
    const single = mutate(raw, (d) => (d.services.db.healthcheck.test = ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U $POSTGRES_USER"]));
    expect(checkDollarEscaping(single, composeVariables)).toHaveLength(1);
    const subshell = mutate(raw, (d) => (d.services.createbuckets.command = ["cat $(ls)"]));
    expect(checkDollarEscaping(subshell, composeVariables)).toHaveLength(1);
    // A Compose variable of .env is fine: that one is meant to be interpolated.
    const composeVar = mutate(raw, (d) => (d.services.db.healthcheck.test = ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U ${POSTGRES_USER}"]));
    expect(checkDollarEscaping(composeVar, composeVariables)).toEqual([]);
  });

  it("a healthcheck variable that only an entrypoint would have set", () => {
    const fileOnly = mutate(loadStack(["compose.yml"]), (d) => {
      delete d.services.db.environment.POSTGRES_USER;
      d.services.db.environment.POSTGRES_USER_FILE = "/run/secrets/postgres_user";
    });
    expect(checkHealthcheckVariables(fileOnly)).toEqual(["db: healthcheck uses $POSTGRES_USER, which is not in the service's environment"]);
  });

  it("a ${VAR} without a default or guard", () => {
    const bare = mutate(loadCompose("compose.yml"), (d) => (d.services.db.environment.POSTGRES_USER = "${POSTGRES_USER}"));
    expect(checkInterpolationGuards(bare)).toEqual(["services.db.environment.POSTGRES_USER: ${POSTGRES_USER} has neither a :- default nor a :? guard"]);
  });

  it("a port published by another service, or on all interfaces", () => {
    expect(checkLocalPorts(mutate(local(), (d) => (d.services.minio.ports = ["127.0.0.1:9001:9001"])))).toHaveLength(1);
    expect(checkLocalPorts(mutate(local(), (d) => (d.services.proxy.ports = ["8080:80"])))).toEqual([
      "proxy: publishes 8080 on all interfaces, not 127.0.0.1",
    ]);
  });

  it("production: an extra published port, or a missing one", () => {
    expect(checkProdPorts(mutate(prod(), (d) => d.services.proxy.ports.push("127.0.0.1:8080:80")))).toHaveLength(1);
    expect(checkProdPorts(mutate(prod(), (d) => (d.services.proxy.ports = ["80:80", "443:443"])))).toEqual(["proxy: 443/udp is not published"]);
    // Without !override, Compose would append the ports: the loopback one of compose.yml would stay.
    const appended = mergeCompose(
      loadCompose("compose.yml"),
      parseCompose(readFileSync(resolve(ROOT, "compose.prod.yml"), "utf8").replace("ports: !override", "ports:")),
    );
    expect(checkProdPorts(interpolate(appended, env))).toHaveLength(1);
  });

  it("the proxy on the backend network", () => {
    expect(checkNetworkIsolation(mutate(local(), (d) => d.services.proxy.networks.push("backend")))).toEqual([
      "proxy shares network backend with db",
      "proxy shares network backend with minio",
    ]);
    // No networks at all means the default network, shared by everyone.
    const defaults = mutate(local(), (d) => {
      for (const name of ["db", "proxy"]) delete d.services[name].networks;
    });
    expect(checkNetworkIsolation(defaults)).toEqual(["proxy shares network default with db"]);
  });

  it("container_name", () => {
    expect(checkNoContainerName(mutate(local(), (d) => (d.services.db.container_name = "db")))).toHaveLength(1);
  });

  it("a shell command for the server image without an entrypoint, and a multi-command mc job", () => {
    expect(checkMinioEntrypoints(mutate(local(), (d) => (d.services.minio.command = ["sh", "-c", "minio server /data"])))).toHaveLength(1);
    expect(checkMinioEntrypoints(mutate(local(), (d) => (d.services.minio.image = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", d.services.minio.command = ["sh", "-c", "x"])))).toHaveLength(1);
    expect(checkMinioEntrypoints(mutate(local(), (d) => delete d.services.createbuckets.entrypoint))).toEqual([
      'createbuckets: a multi-command mc job needs entrypoint: ["/bin/sh", "-c"]',
    ]);
  });

  it("a frozen MinIO image, in the server or the bucket job", () => {
    expect(checkNoFrozenImages(mutate(local(), (d) => (d.services.minio.image = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z")))).toHaveLength(1);
    expect(checkNoFrozenImages(mutate(local(), (d) => (d.services.createbuckets.image = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z")))).toHaveLength(1);
    expect(checkNoFrozenImages(mutate(local(), (d) => (d.services.minio.image = "minio/minio:RELEASE.2025-09-07T16-13-09Z")))).toHaveLength(1);
  });

  it("a service with default capabilities, an extra capability, privileges to gain, no pids limit or a writable root", () => {
    expect(checkHardening(mutate(local(), (d) => delete d.services.minio.cap_drop))).toEqual(["minio: cap_drop does not drop ALL capabilities"]);
    expect(checkHardening(mutate(local(), (d) => d.services.mlflow.cap_add.push("SYS_ADMIN")))).toEqual(["mlflow: cap_add SYS_ADMIN is not one it needs"]);
    expect(checkHardening(mutate(local(), (d) => (d.services.createbuckets.cap_add = ["NET_RAW"])))).toHaveLength(1);
    expect(checkHardening(mutate(local(), (d) => delete d.services.proxy.security_opt))).toEqual(["proxy: no security_opt no-new-privileges:true"]);
    expect(checkHardening(mutate(local(), (d) => delete d.services.db.deploy.resources.limits.pids))).toEqual(["db: no pids limit"]);
    // pids_limit next to production's deploy limits: Compose refuses to start ("can't set distinct values").
    expect(checkHardening(mutate(prod(), (d) => (d.services.db.pids_limit = 256, delete d.services.db.deploy.resources.limits.pids)))).toEqual([
      "db: pids_limit next to deploy.resources.limits (Compose refuses it): put pids in deploy.resources.limits",
    ]);
    expect(checkHardening(mutate(local(), (d) => delete d.services.db.read_only))).toHaveLength(1);
    // pids_limit alone (no deploy limits) counts too.
    expect(checkHardening(mutate(local(), (d) => {
      delete d.services.db.deploy;
      d.services.db.pids_limit = 100;
    }))).toEqual([]);
  });

  it("a long-running service without a restart policy, or a one-off job that restarts", () => {
    expect(checkRestartPolicies(mutate(local(), (d) => delete d.services.mlflow.restart))).toEqual(["mlflow: restart is unset, not unless-stopped"]);
    expect(checkRestartPolicies(mutate(local(), (d) => (d.services.db.restart = "always")))).toHaveLength(1);
  });

  it("MLflow with the root key", () => {
    const rootKey = mutate(local(), (d) => {
      d.services.mlflow.secrets.push("minio_root_password");
      d.services.mlflow.environment.AWS_SECRET_ACCESS_KEY_FILE = "/run/secrets/minio_root_password";
    });
    expect(checkRootKeyHolders(rootKey)).toEqual(["mlflow: mounts the S3 root key (minio_root_password)", "mlflow: signs S3 requests with the root key"]);
    expect(checkRootKeyHolders(mutate(local(), (d) => d.services.proxy.secrets.push({ source: "minio_root_password" })))).toHaveLength(1);
  });

  it("a bind mount of a file that is not in the repository", () => {
    expect(checkBindSources(mutate(local(), (d) => d.services.proxy.volumes.push("./caddy/Missingfile:/etc/x:ro")))).toHaveLength(1);
  });
});

describe("the Compose helpers behave like Compose", () => {
  it("interpolates defaults, guards and $$", () => {
    expect(interpolateString("${A:-x}/${B-y}/$${C}/$A", { A: "1", B: "" })).toBe("1//${C}/1");
    expect(interpolateString("${A:-x}", { A: "" })).toBe("x");
    expect(() => interpolateString("${A:?set A}", {})).toThrow(/set A/);
  });

  it("merges overlays: maps deep, volumes by target, !override replaces, !reset removes", () => {
    const base = parseCompose("services:\n  s:\n    image: a:1.0.0\n    ports: ['1:1']\n    volumes: [v:/data, w:/x]\n    environment: [A=1, B=2]\n");
    const overlay = parseCompose(
      "services:\n  s:\n    ports: !override ['2:2']\n    volumes: [u:/data]\n    environment: {B: 3}\n    image: !reset null\n",
    );
    const merged = mergeCompose(base, overlay).services.s;
    expect(merged.ports).toEqual(["2:2"]);
    expect(merged.volumes).toEqual(["u:/data", "w:/x"]);
    expect(merged.environment).toEqual({ A: "1", B: 3 });
    expect(merged).not.toHaveProperty("image");
    const appended = mergeCompose(base, parseCompose("services:\n  s:\n    ports: ['2:2']\n")).services.s;
    expect(appended.ports).toEqual(["1:1", "2:2"]);
  });
});
