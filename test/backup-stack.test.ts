// backup, restore and upgrade against the local stack, with a fake `docker` on PATH (no Docker engine here) in front of
// REAL servers: the forwarder's ports are a real PostgreSQL and a real S3 server, `docker compose exec db pg_dump|psql`
// runs the real programs against that PostgreSQL, and the smoke checks go to the MLflow double.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installFakeDocker } from "./support/fake-docker.ts";
import { startMlflowDouble, type MlflowDouble } from "./support/mlflow-double.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TSX = import.meta.resolve("tsx");
const HEAD = /alembic_head=(\w+)/.exec(readFileSync(join(FIXTURES, "alembic-head.txt"), "utf8"))![1];
const LOGIN = { username: "mlflow", password: "double-password" };

describe.skipIf(!initdbPath)("backup, restore and upgrade of the local stack (fake docker, real PostgreSQL and S3)", () => {
  let server: TestPostgres;
  let s3server: S3Server;
  let double: MlflowDouble;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    [server, s3server, double] = await Promise.all([startPostgres(), startS3Server({ buckets: ["mlflow-bucket", "offsite"] }), startMlflowDouble({ basicAuth: LOGIN })]);
    tmp = makeTempDir("backup-stack");
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), s3server?.stop(), double?.stop()]);
    tmp?.cleanup();
  });

  /** A stack directory as bootstrap leaves it, its database `db` filled with the migrated fixture. */
  async function stack(name: string) {
    const dir = join(tmp.dir, name);
    mkdirSync(join(dir, "secrets"), { recursive: true });
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, ".env"), `# settings\nPOSTGRES_DB=${name}\nPOSTGRES_USER=${server.user}\nMINIO_ROOT_USER=${s3server.accessKeyId}\nMLFLOW_BUCKET=mlflow-bucket\nMLFLOW_VERSION=3.11.2\n`, { mode: 0o600 });
    writeFileSync(join(dir, "secrets", "postgres_password"), server.password + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "secrets", "minio_root_password"), s3server.secretAccessKey + "\n", { mode: 0o600 });
    await createMlflowDatabase(server, name);
    const m = spawnSync(process.execPath, ["--import", TSX, join(ROOT, "scripts/migrate.ts"), "--from", join(FIXTURES, "mlflow-small.sqlite"), "--no-artifacts", "--to", `postgresql://${server.user}@127.0.0.1:${server.port}/${name}`, "--password-file", join(dir, "secrets", "postgres_password"), "--yes"], { encoding: "utf8" });
    if (m.status !== 0) throw new Error(m.stderr);
    const fake = installFakeDocker(join(dir, "bin"), {
      services: ["db", "minio", "mlflow", "proxy"].map((Service) => ({ Service, State: "running" })),
      pgPort: server.port,
      s3Port: Number(new URL(s3server.endpoint).port),
      upgradeTo: "newrevision01",
    });
    return { dir, fake };
  }
  /** The CLI as a child process; asynchronous, so the MLflow double in this process can answer the smoke checks. */
  function cli(script: string, dir: string, path: string, args: string[], env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, ["--import", TSX, join(ROOT, `scripts/${script}.ts`), ...args], {
      cwd: dir,
      env: { ...process.env, PATH: path, MLFLOW_TRACKING_URI: double.url, MLFLOW_TRACKING_USERNAME: LOGIN.username, MLFLOW_TRACKING_PASSWORD: LOGIN.password, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    onSpawn?.(child.pid!);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    return new Promise((resolve) => child.once("close", (status) => resolve({ status, stdout, stderr })));
  }
  const revision = async (db: string) => (await server.query<{ v: string }>("select version_num as v from alembic_version", [], db)).rows[0].v;
  const count = async (db: string, table: string) => (await server.query<{ n: number }>(`select count(*)::int as n from ${table}`, [], db)).rows[0].n;
  const steps = (calls: string[][]) => calls.map((c) => (c[0] === "compose" ? `compose ${c[1]}${["stop", "start", "up", "build"].includes(c[1]) ? " " + c.at(-1) : c[1] === "exec" ? " " + c[4] : c[1] === "run" && c.includes("db-upgrade") ? " db-upgrade" : ""}` : c[0]));

  it("backup uses the db container's pg_dump through compose exec; restore --replace stops MLflow, restores, starts it and runs the smoke", async () => {
    const { dir, fake } = await stack("stackrt");
    const b = await cli("backup", dir, fake.path, ["--json"]);
    expect(b.status, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    expect(out.where).toBe(join(dir, "backups"));
    expect(out.manifest.postgres.dumpedWith).toBe("pg_dump in the db container");
    expect(out.manifest.mlflowVersion).toBe("3.11.2");
    const dump = fake.calls().find((c) => c[1] === "exec")!;
    expect(dump.slice(0, -1)).toEqual(["compose", "exec", "-T", "db", "pg_dump", "-U", server.user, "-d", "stackrt", "-Fc", "--schema=public"]);
    expect(dump.at(-1)).toMatch(/^--snapshot=[0-9A-F-]+$/);
    for (const c of fake.calls()) expect(c.join(" ")).not.toContain(server.password);
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running"); // a backup does not stop MLflow
    expect(fake.state().containers).toEqual([]); // forwarder gone

    const runs = await count("stackrt", "runs");
    await server.query("truncate runs cascade", [], "stackrt");
    expect(await count("stackrt", "runs")).toBe(0);
    const before = fake.calls().length;
    const r = await cli("restore", dir, fake.path, ["--from", join(dir, "backups", out.name), "--replace", "--yes", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.smoke.ok).toBe(true);
    expect(await count("stackrt", "runs")).toBe(runs);
    const order = steps(fake.calls().slice(before));
    expect(order.indexOf("compose stop mlflow")).toBeGreaterThan(-1);
    expect(order.indexOf("compose exec psql")).toBeGreaterThan(order.indexOf("compose stop mlflow"));
    expect(order.indexOf("compose start mlflow")).toBeGreaterThan(order.indexOf("compose exec psql"));
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
  });

  it("upgrade --dry-run prints the plan and calls no docker; a downgrade or a non-version is refused in one line", async () => {
    const { dir, fake } = await stack("upplan");
    const dry = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--dry-run"]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^Upgrade plan: MLflow 3\.11\.2 -> 3\.12\.0 \(dry run: nothing was changed\)/);
    expect(dry.stdout).toMatch(/build the MLflow 3\.12\.0 image[\s\S]*stop MLflow[\s\S]*back up[\s\S]*db-upgrade[\s\S]*wait until healthy[\s\S]*smoke[\s\S]*write MLFLOW_VERSION=3\.12\.0/);
    const down = await cli("upgrade", dir, fake.path, ["--to", "3.10.0", "--yes"]);
    expect(down.status).toBe(1);
    expect(down.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^upgrade: 3\.10\.0 is older than the stack's MLflow 3\.11\.2: a downgrade is not supported/)]);
    const same = await cli("upgrade", dir, fake.path, ["--to", "3.11.2", "--yes"]);
    expect(same.stderr.trim()).toBe("upgrade: the stack already runs MLflow 3.11.2; nothing to do");
    const junk = await cli("upgrade", dir, fake.path, ["--to", "latest", "--yes"]);
    expect(junk.stderr.trim()).toBe('upgrade: --to "latest" is not an MLflow version (like 3.19.0)');
    expect(fake.calls()).toEqual([]);
  });

  it("upgrade refuses, before any docker call, when the compose files mount a secret bootstrap has not written yet", async () => {
    const { dir, fake } = await stack("upsecrets");
    for (const file of ["compose.yml", "compose.nginx.yml"]) copyFileSync(join(ROOT, file), join(dir, file));
    // Written by an older bootstrap: everything but the secrets added since (MLflow's S3 key, Caddy's user guard).
    for (const name of ["proxy_users.caddy", "proxy_users.htpasswd"]) writeFileSync(join(dir, "secrets", name), "", { mode: 0o600 });
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual(["upgrade: secrets/mlflow_s3_secret_key, secrets/proxy_users.caddy_guard are missing (a newer stack mounts them): run npm run bootstrap first — it adds new secrets and changes nothing that exists"]);
    expect(fake.calls()).toEqual([]);
    expect(readFileSync(join(dir, ".env"), "utf8")).toMatch(/^MLFLOW_VERSION=3\.11\.2$/m);
  });

  it("upgrade: build, stop, backup, db-upgrade, start, smoke, then MLFLOW_VERSION in .env", async () => {
    const { dir, fake } = await stack("upok");
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ from: "3.11.2", to: "3.12.0" });
    expect(out.smoke).toMatch(/smoke: OK/);
    const order = steps(fake.calls()).filter((s) => s !== "compose ps" && s !== "logs" && s !== "port");
    expect(order).toEqual(["compose build mlflow", "compose stop mlflow", "compose run", "compose exec pg_dump", "stop", "compose run db-upgrade", "compose up mlflow"]);
    expect(fake.state()).toMatchObject({ built: ["3.12.0"], upgradedWith: ["3.12.0"], started: ["3.12.0"] });
    expect(await revision("upok")).toBe("newrevision01");
    expect(readFileSync(join(dir, ".env"), "utf8")).toMatch(/^# settings\n[\s\S]*\nMLFLOW_VERSION=3\.12\.0\n$/);
    expect(existsSync(join(out.backup, "manifest.json"))).toBe(true);
  });

  it("upgrade rolls back by itself when the new MLflow fails its smoke: database from the backup, old image, .env unchanged", async () => {
    const { dir, fake } = await stack("upsmoke");
    const runs = await count("upsmoke", "runs");
    const envBefore = readFileSync(join(dir, ".env"), "utf8");
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes"], { MLFLOW_TRACKING_URI: "http://127.0.0.1:1" });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^upgrade: upgrade to 3\.12\.0 failed at the smoke checks: .* — rolled back: the database is restored from .*backups\/[^ ]+ and MLflow 3\.11\.2 runs again; \.env is unchanged$/);
    expect(await revision("upsmoke")).toBe(HEAD);
    expect(await count("upsmoke", "runs")).toBe(runs);
    expect(fake.state().started).toEqual(["3.12.0", "3.11.2"]);
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(readFileSync(join(dir, ".env"), "utf8")).toBe(envBefore);
  });

  it("upgrade rolls back a schema upgrade that breaks half-way", async () => {
    const { dir, fake } = await stack("uphalf");
    const state = fake.state();
    writeFileSync(join(dir, "bin", "state.json"), JSON.stringify({ ...state, dbUpgradeFails: true }));
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^upgrade: upgrade to 3\.12\.0 failed at the schema upgrade \(db-upgrade\): the schema upgrade failed: .*DuplicateColumn.* — rolled back/);
    expect(await revision("uphalf")).toBe(HEAD);
    expect(fake.state().started).toEqual(["3.11.2"]);
    expect(readFileSync(join(dir, ".env"), "utf8")).toMatch(/MLFLOW_VERSION=3\.11\.2/);
  });

  it("upgrade to a version that does not exist fails at the build: MLflow never stopped, nothing changed", async () => {
    const { dir, fake } = await stack("upmissing");
    const state = fake.state();
    writeFileSync(join(dir, "bin", "state.json"), JSON.stringify({ ...state, buildFails: ["9.9.9"] }));
    const r = await cli("upgrade", dir, fake.path, ["--to", "9.9.9", "--yes"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^upgrade: building the MLflow 9\.9\.9 image failed: .*not found — does MLflow 9\.9\.9 exist .*The running stack was not touched$/);
    expect(steps(fake.calls())).not.toContain("compose stop mlflow");
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(readdirSync(dir)).not.toContain("backups");
  });

  /** Makes the fake docker send `signal` to the CLI (pid) at the first call containing `call`. */
  const signalAt = (dir: string, call: string, signal = "SIGINT") => (pid: number) => {
    const path = join(dir, "bin", "state.json");
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, "utf8")), signalAt: { call, pid, signal } }));
  };

  it("upgrade Ctrl-C before the schema step: exit 130, MLflow started again as it was, nothing upgraded", async () => {
    const { dir, fake } = await stack("upintbefore");
    const envBefore = readFileSync(join(dir, ".env"), "utf8");
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes"], {}, signalAt(dir, "compose stop mlflow"));
    expect(r.status, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/upgrade: SIGINT: stopping after the step under way/);
    expect(r.stderr.trim().split("\n").at(-1)).toBe("upgrade: interrupted (SIGINT) while stopping MLflow, before the schema upgrade: nothing was upgraded; MLflow 3.11.2 runs again; .env is unchanged");
    expect(steps(fake.calls())).not.toContain("compose run db-upgrade");
    expect(fake.state().started).toEqual(["3.11.2"]);
    expect(fake.state().services!.find((s) => s.Service === "mlflow")!.State).toBe("running");
    expect(await revision("upintbefore")).toBe(HEAD);
    expect(readFileSync(join(dir, ".env"), "utf8")).toBe(envBefore);
    expect(existsSync(join(dir, ".backup.lock"))).toBe(false);
  });

  it("upgrade Ctrl-C (SIGTERM) during the schema step: exit 130 after the rollback (database from the backup, old image)", async () => {
    const { dir, fake } = await stack("upintafter");
    const runs = await count("upintafter", "runs");
    const r = await cli("upgrade", dir, fake.path, ["--to", "3.12.0", "--yes"], {}, signalAt(dir, "db-upgrade", "SIGTERM"));
    expect(r.status, r.stderr).toBe(130);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^upgrade: upgrade to 3\.12\.0 failed at the schema upgrade \(db-upgrade\): interrupted \(SIGTERM\) — rolled back: the database is restored from .* and MLflow 3\.11\.2 runs again; \.env is unchanged$/);
    expect(fake.state().upgradedWith).toEqual(["3.12.0"]); // the schema step did run...
    expect(await revision("upintafter")).toBe(HEAD); // ...and was rolled back
    expect(await count("upintafter", "runs")).toBe(runs);
    expect(fake.state().started).toEqual(["3.11.2"]);
    expect(readFileSync(join(dir, ".env"), "utf8")).toMatch(/MLFLOW_VERSION=3\.11\.2/);
  });

  it("one backup, restore or upgrade of a stack at a time: .backup.lock names the holder; a dead holder's lock is taken over", async () => {
    const { dir, fake } = await stack("locked");
    const lock = join(dir, ".backup.lock");
    // held by a live process on this host (this test runner)
    writeFileSync(lock, `${process.pid}\n${hostname()}\n2026-12-01T03:00:00.000Z\na backup\n`);
    for (const [script, args] of [["backup", []], ["restore", ["--from", join(dir, "backups", "x"), "--yes"]], ["upgrade", ["--to", "3.12.0", "--yes"]]] as const) {
      const r = await cli(script, dir, fake.path, [...args]);
      expect(r.status, `${script}: ${r.stderr}`).toBe(1);
      expect(r.stderr.trim().split("\n")).toEqual([`${script}: the stack in ${dir} is busy: a backup holds it (pid ${process.pid} on host ${hostname()}, since 2026-12-01T03:00:00.000Z) — wait for it to finish, or delete ${lock} if that run is gone`]);
    }
    expect(fake.calls()).toEqual([]);
    // a holder that was killed: its pid is gone
    const dead = Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
    writeFileSync(lock, `${dead}\n${hostname()}\n2026-12-01T03:00:00.000Z\na backup\n`);
    const b = await cli("backup", dir, fake.path, ["--json"]);
    expect(b.status, b.stderr).toBe(0);
    expect(existsSync(lock)).toBe(false);
    expect(readFileSync(join(ROOT, ".gitignore"), "utf8")).toMatch(/^\.backup\.lock$/m);
  });

  it("the issue's command line: in local-stack mode --s3-endpoint names the endpoint of an s3:// destination", async () => {
    const { dir, fake } = await stack("offsite");
    const keys = { AWS_ACCESS_KEY_ID: s3server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3server.secretAccessKey };
    const b = await cli("backup", dir, fake.path, ["--to", "s3://offsite/mlflow", "--s3-endpoint", s3server.endpoint, "--json"], keys);
    expect(b.status, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    expect(out.where).toBe("s3://offsite/mlflow");
    // --to-endpoint is the unambiguous form; both at once is refused
    const both = await cli("backup", dir, fake.path, ["--to", "s3://offsite/mlflow", "--s3-endpoint", s3server.endpoint, "--to-endpoint", s3server.endpoint], keys);
    expect(both.status).toBe(2);
    expect(both.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: --s3-endpoint and --to-endpoint both name the s3:\/\/ destination's endpoint here/)]);
    // with a folder destination there is nothing for it to name
    const folder = await cli("backup", dir, fake.path, ["--s3-endpoint", s3server.endpoint], keys);
    expect(folder.status).toBe(2);
    expect(folder.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: --s3-endpoint without --db names the endpoint of an s3:\/\/ destination/)]);
    // and the restore reads it back the same way
    const r = await cli("restore", dir, fake.path, ["--from", `s3://offsite/mlflow/${out.name}`, "--s3-endpoint", s3server.endpoint, "--replace", "--yes", "--no-smoke", "--json"], keys);
    expect(r.status, r.stderr).toBe(0);
  });
});
