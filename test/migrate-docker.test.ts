// The Docker-facing parts of `npm run migrate`, with a fake `docker` on PATH (no Docker engine here) in front of REAL
// servers: local-stack mode (credentials from .env and secrets/, the forwarder's ports = a real PostgreSQL and a real
// S3 server), stopping and restarting MLflow (also after a failure), and --upgrade-source on a copy.
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORWARDER } from "../scripts/lib/migrate/local-stack.ts";
import { requireBinary } from "./support/binaries.ts";
import { installFakeDocker } from "./support/fake-docker.ts";
import { freePort } from "./support/ports.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { waitForPort } from "./support/processes.ts";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const SCRIPT = new URL("../scripts/migrate.ts", import.meta.url).pathname;
const TSX = import.meta.resolve("tsx");
const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const HEAD = /alembic_head=(\w+)/.exec(readFileSync(join(FIXTURES, "alembic-head.txt"), "utf8"))![1];
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const python3 = requireBinary("python3", "python3");

/** `npm run migrate` in `cwd` (a stack directory) with the fake docker first on PATH. */
function cli(cwd: string, path: string, args: string[]) {
  return spawnSync(process.execPath, ["--import", TSX, SCRIPT, ...args], { cwd, encoding: "utf8", env: { ...process.env, PATH: path }, timeout: 120_000 });
}

describe.skipIf(!initdbPath)("migrate with Docker (fake docker, real PostgreSQL and S3)", () => {
  let server: TestPostgres;
  let s3server: S3Server;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    [server, s3server] = await Promise.all([startPostgres(), startS3Server({ buckets: ["mlflow-bucket"] })]);
    tmp = makeTempDir("migrate-docker");
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), s3server?.stop()]);
    tmp?.cleanup();
  });

  /** A stack directory as bootstrap leaves it, pointing at database `db` of the test server. */
  function stackDir(name: string, db: string) {
    const dir = join(tmp.dir, name);
    mkdirSync(join(dir, "secrets"), { recursive: true });
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, ".env"), `POSTGRES_DB=${db}\nPOSTGRES_USER=${server.user}\nMINIO_ROOT_USER=${s3server.accessKeyId}\nMLFLOW_BUCKET=mlflow-bucket\n`);
    writeFileSync(join(dir, "secrets", "postgres_password"), server.password + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "secrets", "minio_root_password"), s3server.secretAccessKey + "\n", { mode: 0o600 });
    return dir;
  }
  const running = (...names: string[]) => names.map((Service) => ({ Service, State: "running" }));

  it("local-stack mode: forwarder up, MLflow stopped, database and artifacts migrated, MLflow started, forwarder gone", async () => {
    await createMlflowDatabase(server, "stack");
    const dir = stackDir("stack", "stack");
    const fake = installFakeDocker(join(dir, "bin"), { services: running("db", "minio", "createbuckets", "mlflow", "proxy"), pgPort: server.port, s3Port: Number(new URL(s3server.endpoint).port) });
    const r = cli(dir, fake.path, ["--from", FIXTURE_DB, "--artifacts", join(FIXTURES, "mlflow-small-artifacts"), "--allow-missing-artifacts", "--yes", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.committed).toBe(true);
    expect(out.verified.every((v: { ok: boolean }) => v.ok)).toBe(true);
    expect(out.artifacts.result.uploaded).toBeGreaterThan(0);

    const calls = fake.calls();
    const forward = calls.find((c) => c[0] === "compose" && c[1] === "run")!;
    const name = forward[forward.indexOf("--name") + 1];
    expect(forward.slice(0, forward.indexOf("python3"))).toEqual(["compose", "run", "-d", "--rm", "--no-deps", "--name", name, "-p", "127.0.0.1::5432", "-p", "127.0.0.1::9000", "mlflow"]);
    expect(forward.slice(-3)).toEqual(["900", "5432=db:5432", "9000=minio:9000"]);
    const order = calls.map((c) => (c[0] === "compose" ? `compose ${c[1]}${c[1] === "stop" || c[1] === "start" ? " " + c[2] : ""}` : `${c[0]}${c[0] === "stop" ? " forwarder" : ""}`));
    const at = (step: string) => order.indexOf(step);
    expect(at("compose run")).toBeGreaterThan(-1);
    expect(at("compose stop mlflow")).toBeGreaterThan(at("compose run"));
    expect(at("compose start mlflow")).toBeGreaterThan(at("compose stop mlflow"));
    expect(at("stop forwarder")).toBeGreaterThan(at("compose start mlflow"));
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(fake.state().containers).toEqual([]);
    // Secrets travel as files: never in an argument of any docker call, never in the output.
    for (const c of calls) expect(c.join(" ")).not.toContain(server.password);
    expect(r.stderr + r.stdout).not.toContain(server.password);

    const n = await server.query<{ n: number }>(`select count(*)::int as n from runs`, [], "stack");
    expect(n.rows[0].n).toBeGreaterThan(0);
    const s3 = new S3Client(s3ClientConfig(s3server));
    try {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: "mlflow-bucket" }));
      expect(listed.KeyCount).toBe(out.artifacts.result.uploaded);
      const key = listed.Contents![0].Key!;
      const got = await s3.send(new GetObjectCommand({ Bucket: "mlflow-bucket", Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(readFileSync(join(FIXTURES, "mlflow-small-artifacts", key)))).toBe(true);
    } finally {
      s3.destroy();
    }
  });

  it("a failed migration still starts MLflow again and stops the forwarder", () => {
    const dir = stackDir("again", "stack"); // the database the previous test filled: not empty
    const fake = installFakeDocker(join(dir, "bin"), { services: running("db", "minio", "mlflow"), pgPort: server.port, s3Port: Number(new URL(s3server.endpoint).port) });
    const r = cli(dir, fake.path, ["--from", FIXTURE_DB, "--no-artifacts", "--yes"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^migrate: target is not empty/m);
    expect(r.stderr).toMatch(/starting the MLflow server again/);
    const steps = fake.calls().map((c) => c.slice(0, 3).join(" "));
    expect(steps).toContain("compose stop mlflow");
    expect(steps.indexOf("compose start mlflow")).toBeGreaterThan(steps.indexOf("compose stop mlflow"));
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(fake.state().containers).toEqual([]);
  });

  it("Ctrl-C (SIGINT) in the middle of the copy: nothing written, MLflow started again, forwarder stopped", async () => {
    const { inflate } = await import("../scripts/lib/migrate/inflate.ts");
    const big = join(tmp.dir, "interrupted.db");
    inflate(FIXTURE_DB, big, 400_000);
    await createMlflowDatabase(server, "interrupted");
    const dir = stackDir("interrupted", "interrupted");
    const fake = installFakeDocker(join(dir, "bin"), { services: running("db", "minio", "mlflow"), pgPort: server.port, s3Port: 1 });
    const child = spawn(process.execPath, ["--import", TSX, SCRIPT, "--from", big, "--no-artifacts", "--yes"], { cwd: dir, env: { ...process.env, PATH: fake.path } });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    // Interrupt once the rows flow (the bulk load has started inside the transaction).
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (/dropping keys and indexes/.test(stderr)) clearInterval(poll), child.kill("SIGINT"), resolve();
        if (child.exitCode !== null) clearInterval(poll), reject(new Error(`exited early: ${stderr}`));
      }, 20);
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping/);
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(fake.state().containers).toEqual([]);
    const n = await server.query<{ n: number }>(`select count(*)::int as n from metrics`, [], "interrupted");
    expect(n.rows[0].n).toBe(0);
  });

  it("leaves a stopped MLflow stopped; a stack that is down, or no .env, is one line", async () => {
    await createMlflowDatabase(server, "quiet");
    const dir = stackDir("quiet", "quiet");
    const fake = installFakeDocker(join(dir, "bin"), { services: [...running("db", "minio"), { Service: "mlflow", State: "exited" }], pgPort: server.port, s3Port: 1 });
    const r = cli(dir, fake.path, ["--from", FIXTURE_DB, "--no-artifacts", "--yes"]);
    expect(r.status, r.stderr).toBe(0);
    expect(fake.calls().some((c) => c[1] === "stop" || c[1] === "start")).toBe(false);

    const down = stackDir("down", "quiet");
    const fakeDown = installFakeDocker(join(down, "bin"), { services: [] });
    const d = cli(down, fakeDown.path, ["--from", FIXTURE_DB, "--no-artifacts", "--yes"]);
    expect(d.status).toBe(1);
    expect(d.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^migrate: the stack's db and minio are not running — start the stack \(docker compose up -d --wait\)/)]);
    expect(fakeDown.calls().filter((c) => c[1] === "run")).toEqual([]);

    const bare = join(tmp.dir, "bare");
    mkdirSync(join(bare, "bin"), { recursive: true });
    const fakeBare = installFakeDocker(join(bare, "bin"), {});
    const b = cli(bare, fakeBare.path, ["--from", FIXTURE_DB, "--yes"]);
    expect(b.status).toBe(1);
    expect(b.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^migrate: no \.env in .* — run npm run bootstrap/)]);
  });

  describe("--upgrade-source", () => {
    let older: string;
    beforeAll(() => {
      older = join(tmp.dir, "older.db");
      copyFileSync(FIXTURE_DB, older);
      const db = new Database(older);
      db.prepare("update alembic_version set version_num = '0584bdc529eb'").run();
      db.close();
    });
    const upgradeDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith("mlflow-migrate-upgrade-"));

    it("upgrades a temp copy with the stack's image and migrates it; the original is untouched", async () => {
      await createMlflowDatabase(server, "upgraded");
      const dir = stackDir("upgrade", "upgraded");
      const fake = installFakeDocker(join(dir, "bin"), { upgradeTo: HEAD });
      const before = sha256(older);
      const leftovers = upgradeDirs();
      const pw = join(dir, "secrets", "postgres_password");
      const to = `postgresql://${server.user}@127.0.0.1:${server.port}/upgraded`;
      const plain = cli(dir, fake.path, ["--from", older, "--to", to, "--password-file", pw, "--no-artifacts", "--yes"]);
      expect(plain.status).toBe(1);
      expect(plain.stderr).toMatch(/schema revisions differ: source 0584bdc529eb, target 7d34483879f0 .*--upgrade-source/);

      const r = cli(dir, fake.path, ["--from", older, "--to", to, "--password-file", pw, "--no-artifacts", "--yes", "--upgrade-source", "--json"]);
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.committed).toBe(true);
      expect(out.plan.source).toContain(`a copy upgraded to schema ${HEAD}`);
      expect(sha256(older)).toBe(before);
      const run = fake.calls().find((c) => c.includes("upgrade"))!;
      const mount = run[run.indexOf("-v") + 1];
      expect(run).toEqual(["compose", "run", "--rm", "-T", "--no-deps", "--user", `${process.getuid!()}:${process.getgid!()}`, "-v", mount, "mlflow", "mlflow", "db", "upgrade", "sqlite:////src/copy.db"]);
      expect(mount).toMatch(/^\/.*mlflow-migrate-upgrade-[^/]+:\/src$/);
      expect(existsSync(mount.slice(0, -":/src".length))).toBe(false); // the temp copy is gone
      expect(upgradeDirs()).toEqual(leftovers);
      const v = await server.query<{ v: string }>(`select version_num as v from alembic_version`, [], "upgraded");
      expect(v.rows[0].v).toBe(HEAD);
    });

    it("refuses a source from a newer MLflow; nothing written, original untouched", async () => {
      await createMlflowDatabase(server, "newer");
      const dir = stackDir("newer", "newer");
      const fake = installFakeDocker(join(dir, "bin"), { upgradeTo: "newer" });
      const before = sha256(older);
      const to = `postgresql://${server.user}@127.0.0.1:${server.port}/newer`;
      const r = cli(dir, fake.path, ["--from", older, "--to", to, "--password-file", join(dir, "secrets", "postgres_password"), "--no-artifacts", "--yes", "--upgrade-source"]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^migrate: the source is from a NEWER MLflow than the stack .* raise MLFLOW_VERSION/);
      expect(sha256(older)).toBe(before);
      const n = await server.query<{ n: number }>(`select count(*)::int as n from experiments`, [], "newer");
      expect(n.rows[0].n).toBe(1);
    });
  });
});

describe.skipIf(!initdbPath || !python3)("the forwarder (python3, as in the mlflow image)", () => {
  it("carries a PostgreSQL session to its target", async () => {
    const server = await startPostgres();
    const listen = await freePort();
    const proc = spawn(python3!, ["-c", FORWARDER, "60", `${listen}=127.0.0.1:${server.port}`], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      let said = "";
      proc.stdout.setEncoding("utf8").on("data", (d: string) => (said += d));
      await waitForPort(listen, { timeoutMs: 20_000 });
      expect(said).toMatch(/forwarder ready/);
      const client = new pg.Client({ connectionString: server.url().replace(`:${server.port}/`, `:${listen}/`) });
      await client.connect();
      const r = await client.query<{ port: number }>("select current_setting('port')::int as port");
      await client.end();
      expect(r.rows[0].port).toBe(server.port);
    } finally {
      proc.kill();
      await server.stop();
    }
  });
});
