// Issue 7: every artifact layout a user meets, through `npm run migrate` as users run it (a child process), against a
// real PostgreSQL and a real local S3 server, starting from the real MLflow 3.11 fixture. Each case asserts the exit
// code; a refusal leaves the target database and the bucket as they were; a success leaves every live run's and
// model's files listable in the bucket under the location its row names, with the same bytes.
import { ListObjectsV2Command, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import Database from "../scripts/lib/migrate/sqlite.ts";
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareArtifacts } from "../scripts/lib/migrate/artifacts.ts";
import { migrate } from "../scripts/lib/migrate/migrate.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const FIXTURE_FILES = join(FIXTURES, "mlflow-small-artifacts");
const RECORDED = "/srv/mlflow-local/mlartifacts"; // the root the fixture's file:// locations name
const LOCATIONS: [table: string, column: string, where: string][] = [
  ["experiments", "artifact_location", ""],
  ["runs", "artifact_uri", ""],
  ["logged_models", "artifact_location", ""],
  ["model_versions", "storage_location", ""],
  ["model_versions", "source", ""],
  ["trace_tags", "value", " where key = 'mlflow.artifactLocation'"],
];
const BUCKETS = ["server", "noserver", "empty", "parent", "links", "outlink", "spaces", "deleted", "noart", "allow", "text", "verify"];

/** The one-line error of a failed run (progress lines come before it; never a stack trace). */
function failure(r: { stderr: string }): string {
  expect(r.stderr).not.toMatch(/unexpected error|^\s+at /m);
  return r.stderr.trim().split("\n").at(-1)!;
}

/** Files below `dir`, following symbolic links: relative path -> bytes. */
function tree(dir: string, prefix = ""): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const abs = join(dir, name);
    const st = statSync(abs);
    if (st.isDirectory()) for (const [k, v] of tree(abs, `${prefix}${name}/`)) out.set(k, v);
    else out.set(prefix + name, readFileSync(abs));
  }
  return out;
}

/** A writable copy of the fixture database, `sql` applied. */
function source(path: string, sql = ""): string {
  mkdirSync(dirname(path), { recursive: true });
  copyFileSync(FIXTURE_DB, path);
  const db = new Database(path);
  db.exec(sql);
  db.close();
  return path;
}

/** SQL replacing the fixture's recorded root by `to` in every location column (file:// form and bare form). */
function moveRoot(fileTo: string, bareTo = fileTo): string {
  return LOCATIONS.map(
    ([t, c, w]) =>
      `update ${t} set ${c} = replace(replace(${c}, 'file://${RECORDED}/', '${fileTo}/'), '${RECORDED}/', '${bareTo}/')${w};`,
  ).join("\n");
}

/** The fixture's files plus one file in every live run's and model's folder that has none, so nothing live is missing. */
function completeTree(dir: string) {
  cpSync(FIXTURE_FILES, dir, { recursive: true });
  const db = new Database(FIXTURE_DB, { readonly: true });
  const rows = db
    .prepare(
      `select run_uuid as id, artifact_uri as loc from runs where lifecycle_stage = 'active'
       union all select model_id, artifact_location from logged_models where lifecycle_stage = 'active'`,
    )
    .all() as { id: string; loc: string }[];
  db.close();
  for (const { id, loc } of rows) {
    const folder = join(dir, loc.slice(`file://${RECORDED}/`.length));
    mkdirSync(folder, { recursive: true });
    if (readdirSync(folder).length === 0) writeFileSync(join(folder, `${id}.txt`), `artifact of ${id}\n`);
  }
}

describe.skipIf(!initdbPath)("migrate: every artifact layout (issue 7)", () => {
  let server: TestPostgres;
  let s3server: S3Server;
  let s3: S3Client;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    [server, s3server] = await Promise.all([startPostgres(), startS3Server({ buckets: BUCKETS })]);
    s3 = new S3Client(s3ClientConfig(s3server));
    tmp = makeTempDir("migrate-layouts");
  });
  afterAll(async () => {
    s3?.destroy();
    await Promise.all([server?.stop(), s3server?.stop()]);
    tmp?.cleanup();
  });

  const cli = (db: string, bucket: string, args: string[]) =>
    spawnSync(
      process.execPath,
      ["--import", "tsx", "scripts/migrate.ts", "--to", `postgresql://${server.user}@127.0.0.1:${server.port}/${db}`, "--s3-endpoint", s3server.endpoint, "--bucket", bucket, "--yes", ...args],
      {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, PGPASSWORD: server.password, AWS_ACCESS_KEY_ID: s3server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3server.secretAccessKey },
      },
    );

  const keys = async (bucket: string, prefix = "") => {
    const out = new Map<string, number>();
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) out.set(o.Key!, o.Size!);
      token = page.NextContinuationToken;
    } while (token);
    return out;
  };

  /** The target holds what MLflow's first start creates and nothing else; the bucket is empty. */
  const unchanged = async (db: string, bucket: string) => {
    const r = await server.query<{ runs: number; exps: number }>(`select (select count(*)::int from runs) as runs, (select count(*)::int from experiments) as exps`, [], db);
    expect(r.rows[0]).toEqual({ runs: 0, exps: 1 });
    expect((await keys(bucket)).size).toBe(0);
  };

  /**
   * Every live run and model in the target: its location is mlflow-artifacts:/<p>, and s3://<bucket>/<p>/ holds exactly
   * the files of its folder here (`folderOf` maps the SOURCE row's location to that folder), byte for byte.
   * Returns how many files were compared.
   */
  const everyLiveArtifactInBucket = async (db: string, bucket: string, src: string, folderOf: (sourceLocation: string) => string) => {
    const sql = `select 'r' || run_uuid as id, artifact_uri as loc from runs where lifecycle_stage = 'active'
                 union all select 'm' || model_id, artifact_location from logged_models where lifecycle_stage = 'active'`;
    const target = new Map((await server.query<{ id: string; loc: string }>(sql, [], db)).rows.map((r) => [r.id, r.loc]));
    const sqlite = new Database(src, { readonly: true });
    const before = sqlite.prepare(sql).all() as { id: string; loc: string }[];
    sqlite.close();
    expect(target.size).toBe(before.length);
    let compared = 0;
    for (const { id, loc } of before) {
      const now = target.get(id)!;
      expect(now, id).toMatch(/^mlflow-artifacts:\//);
      const prefix = decodeURIComponent(now.slice("mlflow-artifacts:/".length)).replace(/^\/+/, "");
      const here = tree(folderOf(loc));
      expect(here.size, `${id}: files in ${folderOf(loc)}`).toBeGreaterThan(0);
      const there = await keys(bucket, prefix + "/");
      expect([...there.keys()].sort(), id).toEqual([...here.keys()].map((k) => `${prefix}/${k}`).sort());
      for (const [k, bytes] of here) {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/${k}` }));
        expect(Buffer.from(await got.Body!.transformToByteArray()).equals(bytes), `${prefix}/${k}`).toBe(true);
        compared++;
      }
    }
    return compared;
  };

  it("mlflow-artifacts:/ source (mlflow server): found in ./mlartifacts beside the database; refused when the folder is not there", async () => {
    const dir = join(tmp.dir, "server");
    const src = source(join(dir, "mlflow.db"), moveRoot("mlflow-artifacts:"));
    completeTree(join(dir, "mlartifacts"));
    await createMlflowDatabase(server, "server");
    const r = cli("server", "server", ["--from", src, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.committed).toBe(true);
    expect(out.artifacts.plan.kinds).toMatchObject({ local: 0, server: 29 });
    expect(out.artifacts.plan.missing.filter((m: { live: boolean; required: boolean }) => m.live && m.required)).toEqual([]);
    expect(out.artifacts.result.verified).toBe(out.artifacts.plan.files);
    expect(await everyLiveArtifactInBucket("server", "server", src, (loc) => join(dir, "mlartifacts", loc.slice("mlflow-artifacts:/".length)))).toBeGreaterThan(20);
    // Webhooks of the old environment are copied deactivated, and listed.
    const hooks = await server.query<{ status: string }>(`select status from webhooks`, [], "server");
    expect(hooks.rows).toEqual([{ status: "DISABLED" }]);
    expect(out.plan.webhooks).toEqual([{ name: "lab-hook", url: "https://127.0.0.1:9/mlflow-hook", status: "ACTIVE", copiedAs: "DISABLED" }]);

    // The same database without the server's folder: nothing written, and the message says what to pass.
    const bare = join(tmp.dir, "noserver");
    const src2 = source(join(bare, "mlflow.db"), moveRoot("mlflow-artifacts:"));
    await createMlflowDatabase(server, "noserver");
    const refused = cli("noserver", "noserver", ["--from", src2]);
    expect(refused.status).toBe(1);
    expect(failure(refused)).toEqual(expect.stringMatching(/^migrate: .*mlflow-artifacts:\/ locations .*--artifacts-destination.* — pass --artifacts DIR.*--no-artifacts/));
    await unchanged("noserver", "noserver");
  }, 120_000);

  it("an empty folder, or the parent of the right folder: refused, saying which folder to pass", async () => {
    const empty = join(tmp.dir, "empty-folder");
    mkdirSync(empty);
    await createMlflowDatabase(server, "empty");
    const r = cli("empty", "empty", ["--from", FIXTURE_DB, "--artifacts", empty]);
    expect(r.status).toBe(1);
    expect(failure(r)).toEqual(expect.stringMatching(new RegExp(`^migrate: 1\\d of 1\\d live runs/models point at nothing .*${empty} holds none of them: pass --artifacts DIR`)));
    await unchanged("empty", "empty");

    const parent = join(tmp.dir, "parent");
    completeTree(join(parent, "mlartifacts"));
    await createMlflowDatabase(server, "parent");
    const p = cli("parent", "parent", ["--from", FIXTURE_DB, "--artifacts", parent]);
    expect(p.status).toBe(1);
    expect(failure(p)).toEqual(expect.stringMatching(new RegExp(`is under ${join(parent, "mlartifacts")}: pass --artifacts ${join(parent, "mlartifacts")};`)));
    await unchanged("parent", "parent");
    // Doing what it says works.
    const ok = cli("parent", "parent", ["--from", FIXTURE_DB, "--artifacts", join(parent, "mlartifacts")]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/verified and committed/);
    expect(await everyLiveArtifactInBucket("parent", "parent", FIXTURE_DB, (loc) => join(parent, "mlartifacts", loc.slice(`file://${RECORDED}/`.length)))).toBeGreaterThan(20);
  }, 120_000);

  it("symbolic links to files and folders inside the tree are followed; one leaving the tree or looping is named", async () => {
    const dir = join(tmp.dir, "links");
    completeTree(dir);
    // A shared store inside the tree; a run's file and another run's whole folder link into it.
    mkdirSync(join(dir, "shared", "plots"), { recursive: true });
    writeFileSync(join(dir, "shared", "weights.bin"), Buffer.from([0, 1, 2, 3, 255]));
    writeFileSync(join(dir, "shared", "plots", "loss.png"), "png bytes");
    const runA = join(dir, "exp-A", "94fc8973c2594413aa12e6a8a6b2762d", "artifacts");
    symlinkSync(join(dir, "shared", "weights.bin"), join(runA, "weights.bin"));
    const runB = join(dir, "exp-B", "b4205781db5840599bd8844f7c31692a", "artifacts");
    symlinkSync("../../../shared/plots", join(runB, "plots"));
    await createMlflowDatabase(server, "links");
    const r = cli("links", "links", ["--from", FIXTURE_DB, "--artifacts", dir, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const there = await keys("links");
    expect(there.get("exp-A/94fc8973c2594413aa12e6a8a6b2762d/artifacts/weights.bin")).toBe(5);
    expect(there.get("exp-B/b4205781db5840599bd8844f7c31692a/artifacts/plots/loss.png")).toBe(9);
    expect(await everyLiveArtifactInBucket("links", "links", FIXTURE_DB, (loc) => join(dir, loc.slice(`file://${RECORDED}/`.length)))).toBeGreaterThan(20);

    // A link out of the tree, then a loop: refused before anything is written, the link named.
    const out = join(tmp.dir, "outlink");
    completeTree(out);
    writeFileSync(join(tmp.dir, "outside.txt"), "outside");
    const link = join(out, "exp-A", "94fc8973c2594413aa12e6a8a6b2762d", "artifacts", "outside.txt");
    symlinkSync(join(tmp.dir, "outside.txt"), link);
    await createMlflowDatabase(server, "outlink");
    const o = cli("outlink", "outlink", ["--from", FIXTURE_DB, "--artifacts", out]);
    expect(o.status).toBe(1);
    expect(failure(o)).toEqual(`migrate: artifact link ${link} -> ${join(tmp.dir, "outside.txt")} leaves the artifact folder ${out} — copy what it points at into the folder (cp -L), or pass --artifacts a folder that holds both; nothing was written`);
    await unchanged("outlink", "outlink");
    const { rmSync } = await import("node:fs");
    rmSync(link);
    const loop = join(out, "exp-A", "94fc8973c2594413aa12e6a8a6b2762d", "artifacts", "again");
    symlinkSync("..", loop);
    const l = cli("outlink", "outlink", ["--from", FIXTURE_DB, "--artifacts", out]);
    expect(l.status).toBe(1);
    expect(failure(l)).toEqual(expect.stringMatching(new RegExp(`^migrate: artifact link ${loop.replace(/[.]/g, "\\.")} loops`)));
    await unchanged("outlink", "outlink");
  }, 120_000);

  it("a path with spaces, written both ways (file:// percent-encoded and a bare path): decoded, found, rewritten", async () => {
    const root = join(tmp.dir, "John Smith", "mlruns");
    completeTree(root);
    const encoded = "file://" + root.split("/").map(encodeURIComponent).join("/");
    expect(encoded).toContain("John%20Smith");
    // Experiments and runs percent-encoded (MLflow on macOS/Windows), models and traces as a bare path.
    const src = source(
      join(tmp.dir, "spaces.db"),
      `update experiments set artifact_location = replace(replace(artifact_location, 'file://${RECORDED}', '${encoded}'), '${RECORDED}', '${root}');
       update runs set artifact_uri = replace(artifact_uri, 'file://${RECORDED}', '${encoded}');
       update logged_models set artifact_location = replace(artifact_location, 'file://${RECORDED}', '${root}');
       update model_versions set storage_location = replace(storage_location, 'file://${RECORDED}', '${encoded}');
       update trace_tags set value = replace(value, 'file://${RECORDED}', '${root}') where key = 'mlflow.artifactLocation';`,
    );
    await createMlflowDatabase(server, "spaces");
    const r = cli("spaces", "spaces", ["--from", src, "--json"]); // no --artifacts: the decoded root is here
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.artifacts.plan.root).toBe(root);
    const run = await server.query<{ uri: string }>(`select artifact_uri as uri from runs where run_uuid = '9ba3cb9b174a440a8ec6859ecbb7e743'`, [], "spaces");
    expect(run.rows[0].uri).toBe("mlflow-artifacts:/exp-A/9ba3cb9b174a440a8ec6859ecbb7e743/artifacts");
    const left = await server.query<{ n: number }>(
      `select (select count(*) from runs where artifact_uri not like 'mlflow-artifacts:/%') + (select count(*) from logged_models where artifact_location not like 'mlflow-artifacts:/%')
            + (select count(*) from experiments where artifact_location not like 'mlflow-artifacts:/%') as n`,
      [],
      "spaces",
    );
    expect(Number(left.rows[0].n)).toBe(0);
    const folder = (loc: string) => join(root, decodeURIComponent(loc.replace(/^file:\/\//, "")).slice(root.length + 1));
    expect(await everyLiveArtifactInBucket("spaces", "spaces", src, folder)).toBeGreaterThan(20);
  }, 120_000);

  it("deleted runs and models whose files are gone are allowed (and reported)", async () => {
    const dir = join(tmp.dir, "deleted");
    completeTree(dir); // live ones complete; the deleted run 4d0e…, the deleted experiment's run and model m-5af7… have no files
    await createMlflowDatabase(server, "deleted");
    const r = cli("deleted", "deleted", ["--from", FIXTURE_DB, "--artifacts", dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/run 4d0e7668d31e45af88b7cd0b9ab63a75 \(deleted\): file:\/\/.* not found/);
    expect(r.stdout).not.toMatch(/of live runs\/models/);
    expect(await everyLiveArtifactInBucket("deleted", "deleted", FIXTURE_DB, (loc) => join(dir, loc.slice(`file://${RECORDED}/`.length)))).toBeGreaterThan(20);
  }, 120_000);

  it("--no-artifacts copies the database only and says the runs point at nothing; --allow-missing-artifacts accepts missing live folders", async () => {
    await createMlflowDatabase(server, "noart");
    const r = cli("noart", "noart", ["--from", FIXTURE_DB, "--no-artifacts"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/--no-artifacts: no files were copied; 1\d live run\/model location\(s\) name files the stack does not have/);
    expect((await keys("noart")).size).toBe(0);
    const uri = await server.query<{ uri: string }>(`select artifact_uri as uri from runs where run_uuid = '9ba3cb9b174a440a8ec6859ecbb7e743'`, [], "noart");
    expect(uri.rows[0].uri).toMatch(/^file:\/\//); // untouched: nothing was moved

    // The fixture's own folder: most live runs logged no files. Refused by default, accepted knowingly.
    const dir = join(tmp.dir, "allow");
    cpSync(FIXTURE_FILES, dir, { recursive: true });
    await createMlflowDatabase(server, "allow");
    const refused = cli("allow", "allow", ["--from", FIXTURE_DB, "--artifacts", dir]);
    expect(refused.status).toBe(1);
    expect(failure(refused)).toEqual(expect.stringMatching(/^migrate: 1\d of 1\d live runs\/models point at nothing \(e\.g\. run \w+: file:\/\/.*--allow-missing-artifacts/));
    await unchanged("allow", "allow");
    const ok = cli("allow", "allow", ["--from", FIXTURE_DB, "--artifacts", dir, "--allow-missing-artifacts", "--json"]);
    expect(ok.status, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout);
    expect(out.artifacts.plan.missing).toContainEqual(expect.objectContaining({ table: "runs", id: "94fc8973c2594413aa12e6a8a6b2762d", live: true }));
    // What was there is in the bucket under the rewritten locations.
    const run = await server.query<{ uri: string }>(`select artifact_uri as uri from runs where run_uuid = '9ba3cb9b174a440a8ec6859ecbb7e743'`, [], "allow");
    const prefix = run.rows[0].uri.slice("mlflow-artifacts:/".length);
    expect([...(await keys("allow", prefix + "/")).keys()].sort()).toEqual([`${prefix}/config.json`, `${prefix}/notes/readme.txt`]);
  }, 120_000);

  it("invalid UTF-8, a NUL byte and a BLOB in text columns: refused with table, column and row; replaced and listed on request", async () => {
    const src = source(
      join(tmp.dir, "text.db"),
      `update params set value = cast(x'6c72ff3d302e31' as text) where rowid = (select min(rowid) from params);
       update tags set value = 'a' || char(0) || 'b' where rowid = (select min(rowid) from tags);
       update experiment_tags set value = x'00ff' where rowid = (select min(rowid) from experiment_tags);`,
    );
    await createMlflowDatabase(server, "text");
    const r = cli("text", "text", ["--from", src, "--no-artifacts"]);
    expect(r.status).toBe(1);
    const line = failure(r);
    expect(line).toMatch(/^migrate: 3 text value\(s\) the target cannot hold .*--replace-invalid-text .*; nothing was written$/);
    expect(line).toMatch(/params\.value \(key=.*, run_uuid=\w+\): invalid UTF-8 in "lr\\xff=0\.1"/);
    expect(line).toMatch(/tags\.value \(key=.*, run_uuid=\w+\): NUL byte in "a\\x00b"/);
    expect(line).toMatch(/experiment_tags\.value \(key=.*, experiment_id=\d+\): BLOB in "\\x00\\xff"/);
    await unchanged("text", "text");
    const fixed = cli("text", "text", ["--from", src, "--no-artifacts", "--replace-invalid-text"]);
    expect(fixed.status, fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/replaced with U\+FFFD: params\.value .*invalid UTF-8/);
    expect(fixed.stdout).toMatch(/replaced with U\+FFFD: tags\.value .*NUL byte/);
    expect(fixed.stdout).toMatch(/replaced with U\+FFFD: experiment_tags\.value .*BLOB/);
    const v = await server.query<{ v: string }>(`select value as v from tags where value like 'a%b' and length(value) = 3`, [], "text");
    expect(v.rows).toEqual([{ v: "a\uFFFDb" }]);
  }, 120_000);

  it("an object that is not as planned in the bucket before the commit rolls the database back", async () => {
    const dir = join(tmp.dir, "verify");
    completeTree(dir);
    await createMlflowDatabase(server, "verify");
    const prepared = await prepareArtifacts(FIXTURE_DB, { dir, endpoint: s3server.endpoint, bucket: "verify", accessKeyId: s3server.accessKeyId, secretAccessKey: s3server.secretAccessKey }, () => {});
    const key = "exp-A/9ba3cb9b174a440a8ec6859ecbb7e743/artifacts/config.json";
    const size = readFileSync(join(dir, key)).length;
    await expect(
      migrate({
        from: FIXTURE_DB,
        to: server.url("verify"),
        locationRewrites: prepared.rewrites,
        beforeCopy: async () => {
          await prepared.upload(() => {});
          // Something else overwrites one object with other bytes of the same size after the upload.
          await s3.send(new PutObjectCommand({ Bucket: "verify", Key: key, Body: Buffer.alloc(size, 0x78) }));
        },
        beforeCommit: async () => void (await prepared.verify(() => {})),
      }),
    ).rejects.toThrow(new RegExp(`1 artifact object\\(s\\) are not as planned in s3://verify \\(${key}: (sha256|MD5 \\(ETag\\)) differs\\) — rolled back`));
    prepared.close();
    const r = await server.query<{ runs: number }>(`select count(*)::int as runs from runs`, [], "verify");
    expect(r.rows[0].runs).toBe(0);
  }, 120_000);
});

describe.skipIf(!initdbPath)("migrate: expected failures are one line (issue 7)", () => {
  let server: TestPostgres;
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    server = await startPostgres();
    tmp = makeTempDir("migrate-failures");
  });
  afterAll(async () => {
    await server?.stop();
    tmp?.cleanup();
  });
  const cli = (db: string, args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "scripts/migrate.ts", "--to", `postgresql://${server.user}@127.0.0.1:${server.port}/${db}`, "--yes", "--no-artifacts", ...args], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, PGPASSWORD: server.password },
    });
  const empty = async (db: string) => {
    const r = await server.query<{ runs: number; exps: number }>(`select (select count(*)::int from runs) as runs, (select count(*)::int from experiments) as exps`, [], db);
    expect(r.rows[0]).toEqual({ runs: 0, exps: 1 });
  };

  it("a hot journal left by a crashed writer (SQLITE_READONLY): says how to recover a copy; the source stays as it is", async () => {
    const src = source(join(tmp.dir, "hot", "mlflow.db"));
    // A writer that dies in the middle of a transaction (a small cache makes it write to the file before COMMIT).
    const writer = spawnSync(
      process.execPath,
      ["-e", `const D = require("better-sqlite3"); const db = new D(${JSON.stringify(src)}); db.pragma("cache_size = 1"); db.exec("begin"); for (let i = 0; i < 50; i++) db.exec("update params set value = value || 'x'"); process.kill(process.pid, "SIGKILL");`],
      { cwd: ROOT },
    );
    expect(writer.signal).toBe("SIGKILL");
    const before = [readFileSync(src), readFileSync(src + "-journal")];
    await createMlflowDatabase(server, "hot");
    const r = cli("hot", ["--from", src]);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(/^migrate: .*mlflow\.db has a hot journal \(.*mlflow\.db-journal, left by a writer that crashed\).*SQLITE_READONLY.* migrate the copy; nothing was written$/);
    expect(readFileSync(src).equals(before[0]) && readFileSync(src + "-journal").equals(before[1])).toBe(true);
    await empty("hot");
  }, 60_000);

  it("a left-over migration session (after kill -9) is named with how to end it, not 'stop the MLflow server'", async () => {
    await createMlflowDatabase(server, "leftover");
    const { default: pg } = await import("pg");
    const stale = new pg.Client({ connectionString: server.url("leftover"), application_name: "mlflow-stack-migrate" });
    await stale.connect();
    try {
      await stale.query("begin");
      const pid = (await stale.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0].pid;
      const r = cli("leftover", ["--from", FIXTURE_DB]);
      expect(r.status).toBe(1);
      const line = failure(r);
      expect(line).toMatch(new RegExp(`^migrate: a migration's session is still open on the target \\(pid ${pid}, idle in transaction since .*\\) — wait for it to finish, or end it .* with: select pg_terminate_backend\\(${pid}\\); then re-run; nothing was written$`));
      expect(line).not.toMatch(/stop the MLflow server/);
    } finally {
      await stale.end();
    }
    await empty("leftover");
  }, 60_000);

  it("a value over a column's limit (SQLite does not enforce varchar(N)): one line, rolled back", async () => {
    const src = source(join(tmp.dir, "long.db"), `update runs set name = printf('%.300c', 'n') where run_uuid = '9ba3cb9b174a440a8ec6859ecbb7e743';`);
    await createMlflowDatabase(server, "long");
    const r = cli("long", ["--from", src]);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(/^migrate: a source value is longer than its target column allows \(value too long for type character varying\(250\).*\) — .*; rolled back, nothing was written$/);
    await empty("long");
  }, 60_000);

  it("an unreachable network (ENETUNREACH) for PostgreSQL or S3 is one line", async () => {
    const { targetFailure } = await import("../scripts/lib/migrate/target.ts");
    const { s3Failure } = await import("../scripts/lib/migrate/artifacts.ts");
    const unreachable = Object.assign(new Error("connect ENETUNREACH 10.1.2.3:5432"), { code: "ENETUNREACH" });
    expect(targetFailure("postgresql://u:secret@10.1.2.3:5432/db", unreachable).message).toBe(
      "cannot reach PostgreSQL at postgresql://u:***@10.1.2.3:5432/db (ENETUNREACH) — is it running and is the address right? Nothing was written",
    );
    expect(s3Failure(unreachable, "bucket mlflow").message).toBe("bucket mlflow: cannot reach the S3 server (ENETUNREACH) — is it running and is --s3-endpoint right?");
  });
});
