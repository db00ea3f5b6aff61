// The platform config files (railway.json per service, app.json, heroku.yml) against the documented schemas in
// test/schemas (written from the platforms' docs: see test/schemas/README.md), each schema shown to reject a broken
// copy, and the images they build pinned to the same versions as the Compose stack.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const json = (path: string) => JSON.parse(read(path)) as Record<string, any>;
const compile = (schema: string): ValidateFunction => new Ajv({ allErrors: true, allowUnionTypes: true }).compile(json(join("test", "schemas", schema)));
const explain = (validate: ValidateFunction) => JSON.stringify(validate.errors);

const railway = compile("railway.schema.json");
const herokuApp = compile("heroku-app.schema.json");
const herokuYml = compile("heroku-yml.schema.json");

// Each Railway service: its config file next to its Dockerfile. Railway builds with the service's root directory as
// the context (mlflow/, caddy/); the single container is built from the repository root.
const RAILWAY_SERVICES = [
  { config: "mlflow/railway.json", context: "mlflow" },
  { config: "caddy/railway.json", context: "caddy" },
  { config: "paas/railway.json", context: "." },
];

describe("railway.json of each service", () => {
  for (const { config, context } of RAILWAY_SERVICES) {
    it(`${config} is valid, builds the Dockerfile beside it, checks /health and restarts on failure`, () => {
      const doc = json(config);
      expect(railway(doc), explain(railway)).toBe(true);
      expect(doc.build.builder).toBe("DOCKERFILE");
      expect(existsSync(join(ROOT, context, doc.build.dockerfilePath))).toBe(true);
      expect(join(context, doc.build.dockerfilePath)).toBe(join(dirname(config), "Dockerfile"));
      expect(doc.deploy.healthcheckPath).toBe("/health");
      expect(doc.deploy.restartPolicyType).toBe("ON_FAILURE");
      expect(doc.build.watchPatterns).toContain(`/${dirname(config)}/**`); // paths from the repository root
    });
  }

  it("createbuckets/railway.json (the one-off bucket job) is valid, has no health check and is not restarted after success", () => {
    const doc = json("createbuckets/railway.json");
    expect(railway(doc), explain(railway)).toBe(true);
    expect(existsSync(join(ROOT, "createbuckets", doc.build.dockerfilePath))).toBe(true);
    expect(doc.deploy).not.toHaveProperty("healthcheckPath");
    expect(doc.deploy.restartPolicyType).toBe("ON_FAILURE");
  });

  it("the schema rejects a misspelt key and a wrong restart policy", () => {
    expect(railway({ deploy: { healthCheckPath: "/health" } })).toBe(false);
    expect(railway({ deploy: { restartPolicyType: "on_failure" } })).toBe(false);
    expect(railway({ build: { builder: "DOCKER" } })).toBe(false);
    expect(railway({ deploy: { healthcheckPath: "health" } })).toBe(false);
  });
});

describe("Heroku: app.json and heroku.yml", () => {
  it("app.json is valid: container stack, Postgres add-on, a generated password, the S3 settings asked for", () => {
    const doc = json("app.json");
    expect(herokuApp(doc), explain(herokuApp)).toBe(true);
    expect(doc.stack).toBe("container");
    expect(doc.addons).toContain("heroku-postgresql:essential-0");
    expect(doc.env.AUTH_PASSWORD).toEqual(expect.objectContaining({ generator: "secret" }));
    expect(doc.env.AUTH_PASSWORD).not.toHaveProperty("value");
    for (const name of ["MLFLOW_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) expect(doc.env[name].required).toBe(true);
    // DATABASE_URL comes from the add-on: never a value in the file.
    expect(doc.env).not.toHaveProperty("DATABASE_URL");
  });

  it("heroku.yml is valid and builds paas/Dockerfile for the web dyno", () => {
    const doc = parse(read("heroku.yml"));
    expect(herokuYml(doc), explain(herokuYml)).toBe(true);
    expect(doc.build.docker.web).toBe("paas/Dockerfile");
    expect(existsSync(join(ROOT, doc.build.docker.web))).toBe(true);
    expect(doc.setup.addons[0].plan).toBe(json("app.json").addons[0]);
  });

  it("the schemas reject unknown keys and a wrong generator", () => {
    expect(herokuApp({ env: { X: { generator: "random" } } })).toBe(false);
    expect(herokuApp({ stack: "container", addon: [] })).toBe(false);
    expect(herokuYml({ build: { dockerfile: "Dockerfile" } })).toBe(false);
    expect(herokuYml({ setup: {} })).toBe(false);
  });
});

describe("platform images are the Compose stack's images", () => {
  const composeCaddy = /^\s+image: (caddy:\S+)$/m.exec(read("compose.yml"))![1];
  const mlflowVersion = /^ARG MLFLOW_VERSION=(\S+)$/m.exec(read("mlflow/Dockerfile"))![1];

  it("createbuckets/Dockerfile starts from the Silo image compose.yml runs (its mc; no frozen quay.io/minio image)", () => {
    const images = [...read("compose.yml").matchAll(/^\s+image: (pgsty\/silo:\S+)$/gm)].map((m) => m[1]);
    expect(images).toHaveLength(2); // the server and createbuckets
    expect(new Set(images).size).toBe(1);
    expect(read("createbuckets/Dockerfile")).toContain(`\nFROM ${images[0]}\n`);
    expect(read("createbuckets/Dockerfile")).not.toMatch(/quay\.io\/minio/);
  });

  it("caddy/Dockerfile starts from the proxy image compose.yml runs", () => {
    expect(read("caddy/Dockerfile")).toMatch(new RegExp(`^FROM ${composeCaddy.replace(/\./g, "\\.")}$`, "m"));
  });

  it("paas/Dockerfile uses the same MLflow version, drivers and entrypoint as mlflow/Dockerfile, and the same caddy", () => {
    const paas = read("paas/Dockerfile");
    expect(paas).toMatch(new RegExp(`^ARG MLFLOW_VERSION=${mlflowVersion.replace(/\./g, "\\.")}$`, "m"));
    expect(paas).toMatch(/^FROM ghcr\.io\/mlflow\/mlflow:v\$\{MLFLOW_VERSION\}$/m);
    expect(read("mlflow/Dockerfile")).toMatch(/^FROM ghcr\.io\/mlflow\/mlflow:v\$\{MLFLOW_VERSION\}$/m);
    const caddyVersion = /^ARG CADDY_VERSION=(\S+)$/m.exec(paas)![1];
    expect(`caddy:${caddyVersion}-alpine`).toBe(composeCaddy);
    for (const file of ["mlflow/requirements.txt", "mlflow/docker-entrypoint.sh", "caddy/docker-entrypoint.sh", "caddy/Caddyfile", "paas/supervisor.py"]) {
      expect(paas).toContain(`COPY ${file} `);
    }
    expect(paas).toMatch(/^ENTRYPOINT \["supervisor\.py"\]$/m);
    expect(paas).toMatch(/^USER \d+$/m); // no Compose secrets to read: no need for root
  });
});
