// npm run backup / npm run restore as users run them (child processes) against a real PostgreSQL and a real S3 server,
// with the real MLflow fixture migrated in: round trip byte for byte, incremental, --keep, damaged backups, a target
// that holds data, --replace, a kill -9 in the middle of a backup, an s3:// destination.
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync, chmodSync, mkdirSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";
import { ADVISORY_LOCK } from "../scripts/lib/backup/database.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");
const FIXTURE_ARTIFACTS = join(FIXTURES, "mlflow-small-artifacts");

describe("backup and restore CLIs: usage", () => {
  const run = (script: string, args: string[]) => spawnSync(process.execPath, ["--import", "tsx", `scripts/${script}.ts`, ...args], { cwd: ROOT, encoding: "utf8" });
  it("--help, and one line for bad usage", () => {
    for (const script of ["backup", "restore"]) {
      const help = run(script, ["--help"]);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: npm run ${script}`));
      expect(help.stdout).toMatch(/Secrets|secrets/);
    }
    const keep = run("backup", ["--keep", "0"]);
    expect(keep.status).toBe(2);
    expect(keep.stderr.trim().split("\n")).toEqual(["backup: --keep must be a whole number of at least 1, got \"0\""]);
    const from = run("restore", ["--yes"]);
    expect(from.status).toBe(2);
    expect(from.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: --from BACKUP is required/)]);
  });
});

describe.skipIf(!initdbPath)("backup and restore against PostgreSQL and S3", () => {
  let server: TestPostgres;
  let s3server: S3Server;
  let s3: S3Client;
  let tmp: { dir: string; cleanup: () => void };
  let pwfile: string;
  const BUCKETS = ["src-bucket", "dst-bucket", "offsite", "full-bucket"];
  beforeAll(async () => {
    [server, s3server] = await Promise.all([startPostgres(), startS3Server({ buckets: BUCKETS })]);
    s3 = new S3Client(s3ClientConfig(s3server));
    tmp = makeTempDir("backup");
    pwfile = join(tmp.dir, "pw");
    writeFileSync(pwfile, server.password + "\n", { mode: 0o600 });
    // The source: the real fixture migrated into a fresh MLflow schema, artifacts into its bucket.
    await createMlflowDatabase(server, "src");
    const m = cli("migrate", ["--from", FIXTURE_DB, "--artifacts", FIXTURE_ARTIFACTS, "--allow-missing-artifacts", "--to", dbUrl("src"), "--password-file", pwfile, "--s3-endpoint", s3server.endpoint, "--bucket", "src-bucket", "--yes"]);
    if (m.status !== 0) throw new Error(`migrate failed: ${m.stderr}`);
  }, 120_000);
  afterAll(async () => {
    s3?.destroy();
    await Promise.all([server?.stop(), s3server?.stop()]);
    tmp?.cleanup();
  });

  const dbUrl = (db: string) => `postgresql://${server.user}@127.0.0.1:${server.port}/${db}`;
  const s3env = () => ({ AWS_ACCESS_KEY_ID: s3server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3server.secretAccessKey });
  function cli(script: string, args: string[], env: Record<string, string> = {}) {
    return spawnSync(process.execPath, ["--import", "tsx", `scripts/${script}.ts`, ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...s3env(), ...env }, timeout: 120_000 });
  }
  const target = (db: string, bucket: string) => ["--db", dbUrl(db), "--password-file", pwfile, "--s3-endpoint", s3server.endpoint, "--bucket", bucket, "--mlflow-version", "3.11.2"];
  const backup = (to: string, db = "src", bucket = "src-bucket", extra: string[] = []) => cli("backup", [...target(db, bucket), "--to", to, "--json", ...extra]);
  const restore = (from: string, db: string, bucket: string, extra: string[] = []) => cli("restore", [...target(db, bucket), "--from", from, "--json", ...extra]);

  /** Every table as sorted text rows: two databases hold the same data when these are equal. */
  async function tableDigest(db: string): Promise<Record<string, string>> {
    const tables = await server.query<{ t: string }>(`select tablename as t from pg_tables where schemaname = 'public' order by 1`, [], db);
    const out: Record<string, string> = {};
    for (const { t } of tables.rows) {
      const r = await server.query<{ d: string; n: number }>(`select md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) as d, count(*)::int as n from public."${t}" x`, [], db);
      out[t] = `${r.rows[0].n}:${r.rows[0].d}`;
    }
    return out;
  }
  async function bucketContents(bucket: string): Promise<Map<string, Buffer>> {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const out = new Map<string, Buffer>();
    for (const c of listed.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: c.Key! }));
      out.set(c.Key!, Buffer.from(await got.Body!.transformToByteArray()));
    }
    return out;
  }
  async function emptyBucket(bucket: string) {
    const keys = [...(await bucketContents(bucket)).keys()];
    if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
  }
  const backupsIn = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith(".")).sort() : []);

  it("round trip: backup, then restore into a fresh stack schema and an empty bucket gives back every row and byte", async () => {
    const dest = join(tmp.dir, "round");
    const b = backup(dest);
    expect(b.status, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    expect(out.manifest.objects.count).toBeGreaterThan(0);
    expect(out.manifest.objects.copied).toBe(out.manifest.objects.count);
    expect(out.manifest.alembicRevision).toBe("7d34483879f0");
    expect(out.manifest.mlflowVersion).toBe("3.11.2");
    expect(out.manifest.database.tables.runs).toBeGreaterThan(0);
    expect(b.stderr).toMatch(/dumping the database/);
    expect(b.stderr + b.stdout).not.toContain(server.password);
    const dir = join(dest, out.name);
    expect(readdirSync(dir).sort()).toEqual(["database.dump", "manifest.json", "manifest.json.sha256", "objects"]);

    await createMlflowDatabase(server, "dst");
    const r = restore(dir, "dst", "dst-bucket");
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.objects.uploaded).toBe(out.manifest.objects.count);
    expect(res.needsUpgrade).toBeNull();
    expect(await tableDigest("dst")).toEqual(await tableDigest("src"));
    const [src, dst] = await Promise.all([bucketContents("src-bucket"), bucketContents("dst-bucket")]);
    expect([...dst.keys()].sort()).toEqual([...src.keys()].sort());
    for (const [key, bytes] of src) expect(dst.get(key)!.equals(bytes), key).toBe(true);
    // and those are the fixture's files, byte for byte
    const [key, bytes] = [...dst].find(([k]) => k.endsWith("config.json"))!;
    expect(bytes.equals(readFileSync(join(FIXTURE_ARTIFACTS, key)))).toBe(true);

    // A second restore into the now filled target is refused, nothing changed; --replace works.
    await server.query(`update experiments set name = 'changed after restore' where experiment_id = 1`, [], "dst");
    await s3.send(new PutObjectCommand({ Bucket: "dst-bucket", Key: "stray/file.txt", Body: "not in the backup" }));
    const refused = restore(dir, "dst", "dst-bucket");
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split("\n").at(-1)).toMatch(/^restore: the target holds data \(.*\) — restore into an empty stack, or pass --replace/);
    expect((await server.query(`select name from experiments where experiment_id = 1`, [], "dst")).rows[0].name).toBe("changed after restore");
    const replaced = restore(dir, "dst", "dst-bucket", ["--replace"]);
    expect(replaced.status, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout).objects).toMatchObject({ deleted: 1, skipped: out.manifest.objects.count, uploaded: 0 });
    expect(await tableDigest("dst")).toEqual(await tableDigest("src"));
    expect([...(await bucketContents("dst-bucket")).keys()].sort()).toEqual([...src.keys()].sort());
  });

  it("an interrupted restore resumes: objects already put back are skipped, the rest uploaded, no --replace needed", async () => {
    const dest = join(tmp.dir, "resume");
    const b = backup(dest, "src", "src-bucket");
    expect(b.status, b.stderr).toBe(0);
    const dir = join(dest, JSON.parse(b.stdout).name);
    await createMlflowDatabase(server, "resumed");
    const first = restore(dir, "resumed", "dst-bucket", ["--replace"]);
    expect(first.status, first.stderr).toBe(0);
    // The state an interruption during the object phase leaves: an empty database, some of the objects back.
    await createMlflowDatabase(server, "resumed");
    const keys = [...(await bucketContents("dst-bucket")).keys()].sort();
    const gone = keys.filter((_, i) => i % 2 === 0);
    await s3.send(new DeleteObjectsCommand({ Bucket: "dst-bucket", Delete: { Objects: gone.map((Key) => ({ Key })) } }));
    const again = restore(dir, "resumed", "dst-bucket");
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).objects).toEqual({ uploaded: gone.length, skipped: keys.length - gone.length, deleted: 0 });
    expect(await tableDigest("resumed")).toEqual(await tableDigest("src"));
    const [src, dst] = await Promise.all([bucketContents("src-bucket"), bucketContents("dst-bucket")]);
    for (const [key, bytes] of src) expect(dst.get(key)?.equals(bytes), key).toBe(true);
  });

  it("incremental: a second backup copies no unchanged object, lists them all, and restores whole on its own", async () => {
    const dest = join(tmp.dir, "incremental");
    const first = backup(dest);
    expect(first.status, first.stderr).toBe(0);
    await s3.send(new PutObjectCommand({ Bucket: "src-bucket", Key: "1/new-run/artifacts/added.txt", Body: "added between backups" }));
    const second = backup(dest);
    expect(second.status, second.stderr).toBe(0);
    const a = JSON.parse(first.stdout);
    const b = JSON.parse(second.stdout);
    expect(b.previous).toBe(a.name);
    expect(b.manifest.objects).toMatchObject({ count: a.manifest.objects.count + 1, copied: 1, reused: a.manifest.objects.count });
    const third = backup(dest);
    expect(JSON.parse(third.stdout).manifest.objects).toMatchObject({ copied: 0, reused: b.manifest.objects.count });
    // Pruning the first two does not hurt the third: each backup holds its own files.
    const pruned = backup(dest, "src", "src-bucket", ["--keep", "1"]);
    expect(pruned.status, pruned.stderr).toBe(0);
    expect(JSON.parse(pruned.stdout).pruned).toHaveLength(3);
    const [only] = backupsIn(dest);
    await createMlflowDatabase(server, "incr");
    const r = restore(join(dest, only), "incr", "dst-bucket", ["--replace"]);
    expect(r.status, r.stderr).toBe(0);
    expect(await tableDigest("incr")).toEqual(await tableDigest("src"));
    const [src, dst] = await Promise.all([bucketContents("src-bucket"), bucketContents("dst-bucket")]);
    expect(dst.size).toBe(src.size);
    for (const [key, bytes] of src) expect(dst.get(key)!.equals(bytes), key).toBe(true);
  });

  it("--keep prunes the oldest complete backups and never an incomplete one", () => {
    const dest = join(tmp.dir, "keep");
    for (let i = 0; i < 3; i++) expect(backup(dest).status).toBe(0);
    const complete = backupsIn(dest);
    expect(complete).toHaveLength(3);
    // an incomplete backup older than all of them (a failed run)
    const broken = "2000-01-01T00-00-00Z";
    mkdirSync(join(dest, broken));
    writeFileSync(join(dest, broken, "INCOMPLETE"), "");
    const r = backup(dest, "src", "src-bucket", ["--keep", "2"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.pruned).toEqual(complete.slice(0, 2));
    expect(out.incomplete).toEqual([broken]);
    expect(backupsIn(dest)).toEqual([broken, complete[2], out.name]);
  });

  it("a corrupt manifest, a damaged part or an incomplete backup is refused before anything is written", async () => {
    const dest = join(tmp.dir, "corrupt");
    const b = backup(dest);
    expect(b.status, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    const dir = join(dest, out.name);
    await createMlflowDatabase(server, "victim");
    const before = await tableDigest("victim");
    const manifestPath = join(dir, "manifest.json");
    const manifest = readFileSync(manifestPath, "utf8");
    writeFileSync(manifestPath, manifest.replace(/"runs": \d+/, '"runs": 999'));
    let r = restore(dir, "victim", "dst-bucket", ["--replace"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: the manifest of .* is corrupt \(its sha256 does not match manifest.json.sha256\)/)]);
    writeFileSync(manifestPath, manifest);

    const item = out.manifest.objects.count > 0 ? JSON.parse(manifest).objects.items[0] : undefined;
    const part = join(dir, item.file);
    const original = readFileSync(part);
    const flipped = Buffer.from(original);
    flipped[0] ^= 1;
    chmodSync(part, 0o600);
    writeFileSync(part, flipped);
    r = restore(dir, "victim", "dst-bucket", ["--replace"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`^restore: object ${item.key.replace(/[.]/g, "\\.")} in .* does not match the manifest .* the backup is damaged`));
    writeFileSync(part, original);

    const dump = join(dir, "database.dump");
    writeFileSync(dump, readFileSync(dump).subarray(0, 100));
    r = restore(dir, "victim", "dst-bucket", ["--replace"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^restore: the database dump in .* does not match the manifest/);

    writeFileSync(join(dir, "INCOMPLETE"), "");
    r = restore(dir, "victim", "dst-bucket", ["--replace"]);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: .* is an incomplete backup/)]);
    expect(await tableDigest("victim")).toEqual(before);

    const missing = restore(join(tmp.dir, "no-such-backup"), "victim", "dst-bucket");
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: .*no-such-backup has no manifest\.json/)]);
  });

  it("a part damaged inside (same size) is caught while it streams: the database is rolled back, the bad object removed", async () => {
    const dest = join(tmp.dir, "damaged-inside");
    const b = backup(dest);
    expect(b.status, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    const dir = join(dest, out.name);
    await createMlflowDatabase(server, "rolledback");
    await server.query(`insert into experiments (experiment_id, name, artifact_location, lifecycle_stage) values (77, 'kept', 's3://x/77', 'active')`, [], "rolledback");
    const before = await tableDigest("rolledback");
    await emptyBucket("dst-bucket");

    // The dump: one byte flipped near its end (the size check passes; pg_restore may or may not notice).
    const dump = join(dir, "database.dump");
    const original = readFileSync(dump);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 20] ^= 0xff;
    writeFileSync(dump, flipped);
    let r = restore(dir, "rolledback", "dst-bucket", ["--replace"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^restore: the database dump in .* does not match the manifest \(\d+ bytes, sha256 .* the backup is damaged/);
    expect(await tableDigest("rolledback")).toEqual(before);
    writeFileSync(dump, original);

    // An object: detected while it is uploaded; the database is not committed, the bad copy does not stay.
    const item = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")).objects.items.find((i: { size: number }) => i.size > 0);
    const part = join(dir, item.file);
    const bytes = readFileSync(part);
    const bad = Buffer.from(bytes);
    bad[bad.length - 1] ^= 1;
    writeFileSync(part, bad);
    await emptyBucket("dst-bucket");
    r = restore(dir, "rolledback", "dst-bucket", ["--replace"]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^restore: object .* does not match the manifest .* the backup is damaged/);
    expect(await tableDigest("rolledback")).toEqual(before);
    expect((await bucketContents("dst-bucket")).has(item.key)).toBe(false);
    writeFileSync(part, bytes);
    // and the same backup, repaired, restores (the run resumes over what the failed one put back)
    r = restore(dir, "rolledback", "dst-bucket", ["--replace", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect(await tableDigest("rolledback")).toEqual(await tableDigest("src"));
  });

  it("a backup from a newer MLflow is refused; one from an older MLflow restores and says db-upgrade is needed", async () => {
    const dest = join(tmp.dir, "versions");
    const b = backup(dest);
    const dir = join(dest, JSON.parse(b.stdout).name);
    await createMlflowDatabase(server, "newer");
    const before = await tableDigest("newer");
    const refused = cli("restore", [...target("newer", "dst-bucket").slice(0, -1), "3.10.0", "--from", dir, "--replace"]);
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split("\n").at(-1)).toMatch(/^restore: the backup is from MLflow 3\.11\.2, NEWER than the stack's 3\.10\.0 — upgrade the stack first/);
    expect(await tableDigest("newer")).toEqual(before);
    const older = cli("restore", [...target("newer", "dst-bucket").slice(0, -1), "3.12.0", "--from", dir, "--replace"]);
    expect(older.status, older.stderr).toBe(0);
    expect(older.stdout).toMatch(/NEXT +the backup is from MLflow 3\.11\.2 .* run docker compose run --rm mlflow db-upgrade/);
  });

  it("a local pg_dump older than the server is refused in one line", () => {
    const fakeBin = join(tmp.dir, "oldpg");
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, "pg_dump"), "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n", { mode: 0o755 });
    const r = cli("backup", [...target("src", "src-bucket"), "--to", join(tmp.dir, "old")], { PATH: `${fakeBin}:${process.env.PATH}` });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: local pg_dump 9\.6 is older than the server \(PostgreSQL 15\.\d+\) — install PostgreSQL 15's client tools/)]);
    expect(backupsIn(join(tmp.dir, "old"))).toEqual([]);
  });

  it("kill -9 in the middle of a backup leaves it marked incomplete; the next run ignores it", async () => {
    const dest = join(tmp.dir, "killed");
    expect(backup(dest).status).toBe(0);
    const [good] = backupsIn(dest);
    // A big object so that the copy takes a moment.
    await s3.send(new PutObjectCommand({ Bucket: "src-bucket", Key: "big/blob.bin", Body: Buffer.alloc(64 << 20, 1) }));
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/backup.ts", ...target("src", "src-bucket"), "--to", dest], { cwd: ROOT, env: { ...process.env, ...s3env() } });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (/copying the objects/.test(stderr)) clearInterval(poll), child.kill("SIGKILL"), resolve();
        if (child.exitCode !== null) clearInterval(poll), reject(new Error(`exited early: ${stderr}`));
      }, 5);
    });
    await new Promise((resolve) => child.once("exit", resolve));
    const killed = backupsIn(dest).find((n) => n !== good)!;
    expect(existsSync(join(dest, killed, "INCOMPLETE"))).toBe(true);
    expect(existsSync(join(dest, killed, "manifest.json"))).toBe(false);
    const next = backup(dest, "src", "src-bucket", ["--keep", "1"]);
    expect(next.status, next.stderr).toBe(0);
    const out = JSON.parse(next.stdout);
    expect(out.previous).toBe(good);
    expect(out.incomplete).toEqual([killed]);
    expect(out.pruned).toEqual([good]);
    expect(backupsIn(dest)).toEqual([killed, out.name]);
    const refused = restore(join(dest, killed), "src", "src-bucket");
    expect(refused.stderr.trim().split("\n")).toEqual([expect.stringMatching(/is an incomplete backup/)]);
  });

  it("an s3:// destination: backup, incremental, restore from it; an unreachable one is one line", async () => {
    const env = { BACKUP_S3_ENDPOINT_URL: s3server.endpoint };
    const b1 = cli("backup", [...target("src", "src-bucket"), "--to", "s3://offsite/mlflow", "--json"], env);
    expect(b1.status, b1.stderr).toBe(0);
    const b2 = cli("backup", [...target("src", "src-bucket"), "--to", "s3://offsite/mlflow", "--json", "--keep", "1"], env);
    expect(b2.status, b2.stderr).toBe(0);
    const out = JSON.parse(b2.stdout);
    expect(out.manifest.objects.copied).toBe(0);
    expect(out.pruned).toHaveLength(1);
    await createMlflowDatabase(server, "fromoffsite");
    const r = cli("restore", [...target("fromoffsite", "dst-bucket"), "--from", `s3://offsite/mlflow/${out.name}`, "--replace", "--json"], env);
    expect(r.status, r.stderr).toBe(0);
    expect(await tableDigest("fromoffsite")).toEqual(await tableDigest("src"));
    const bad = cli("backup", [...target("src", "src-bucket"), "--to", "s3://offsite/mlflow"], { BACKUP_S3_ENDPOINT_URL: "http://127.0.0.1:1" });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: cannot use the backup destination s3:\/\/offsite\/mlflow: .* — check --to-endpoint/)]);
  });

  it("an unwritable backup folder is one line and leaves nothing behind", () => {
    const ro = join(tmp.dir, "readonly");
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    const r = backup(join(ro, "backups"));
    if (process.getuid?.() === 0) {
      // root writes anywhere: use a path under a file instead
      writeFileSync(join(tmp.dir, "a-file"), "");
      const f = backup(join(tmp.dir, "a-file", "backups"));
      expect(f.status).toBe(1);
      expect(f.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: cannot write to the backup folder .*a-file\/backups: ENOTDIR/)]);
    } else {
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^backup: cannot write to the backup folder .*: EACCES — choose a folder you can write to/)]);
    }
  });

  it("two backups or restores of one database never run at once: the advisory lock names its holder", async () => {
    const dest = join(tmp.dir, "advisory");
    const b = backup(dest);
    expect(b.status, b.stderr).toBe(0);
    const dir = join(dest, JSON.parse(b.stdout).name);
    await createMlflowDatabase(server, "advisory");
    const holder = new pg.Client({ host: "127.0.0.1", port: server.port, user: server.user, password: server.password, database: "advisory", application_name: "mlflow-stack backup pid=424242 host=elsewhere" });
    await holder.connect();
    try {
      await holder.query("select pg_advisory_lock($1, $2)", [...ADVISORY_LOCK]);
      const refused = backup(join(tmp.dir, "advisory2"), "advisory");
      expect(refused.status).toBe(1);
      expect(refused.stderr.trim().split("\n")).toEqual([
        expect.stringMatching(/^backup: another backup or restore is running against postgresql:\/\/.*\/advisory: a backup \(pid 424242 on host elsewhere, since \d{4}-.*Z\) holds its lock — wait for it to finish, then re-run; nothing was changed$/),
      ]);
      expect(backupsIn(join(tmp.dir, "advisory2"))).toEqual([]); // not even an INCOMPLETE one
      const r = restore(dir, "advisory", "dst-bucket", ["--replace"]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: another backup or restore is running against .*: a backup \(pid 424242 on host elsewhere/)]);
      expect((await server.query<{ n: number }>("select count(*)::int as n from runs", [], "advisory")).rows[0].n).toBe(0);
    } finally {
      await holder.end();
    }
    const ok = restore(dir, "advisory", "dst-bucket", ["--replace"]);
    expect(ok.status, ok.stderr).toBe(0);
  });

  it("a backup folder's .lock: a backup takes it exclusive, a restore shared; a dead holder's is taken over", () => {
    const dest = join(tmp.dir, "folderlock");
    const b = backup(dest);
    expect(b.status, b.stderr).toBe(0);
    const dir = join(dest, JSON.parse(b.stdout).name);
    const lock = join(dest, ".lock");
    writeFileSync(lock, `${process.pid}\n${hostname()}\n2026-12-01T03:00:00.000Z\na backup\n`); // a live backup
    const refused = backup(dest);
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split("\n")).toEqual([`backup: the backup folder ${dest} is in use: a backup holds it (pid ${process.pid} on host ${hostname()}, since 2026-12-01T03:00:00.000Z) — wait for it to finish, or delete ${lock} if that run is gone`]);
    const r = restore(dir, "src", "src-bucket");
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^restore: the backup folder .* is in use: a backup holds it/)]);
    // a live restore (shared): another backup (it could prune the backup being restored) is refused
    rmSync(lock);
    writeFileSync(join(dest, `.lock.shared.${process.pid}`), `${process.pid}\n${hostname()}\n2026-12-01T03:00:00.000Z\na restore\n`);
    const pruning = backup(dest, "src", "src-bucket", ["--keep", "1"]);
    expect(pruning.status).toBe(1);
    expect(pruning.stderr.trim()).toMatch(/^backup: the backup folder .* is in use: a restore holds it/);
    expect(backupsIn(dest)).toEqual([JSON.parse(b.stdout).name]);
    rmSync(join(dest, `.lock.shared.${process.pid}`));
    // a killed backup's lock
    const dead = Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
    writeFileSync(lock, `${dead}\n${hostname()}\n2026-12-01T03:00:00.000Z\na backup\n`);
    const again = backup(dest);
    expect(again.status, again.stderr).toBe(0);
    expect(readdirSync(dest).filter((n) => n.startsWith(".lock"))).toEqual([]);
  });

  it("disk full in the middle of a backup (a real 8 MiB tmpfs): incomplete marker, older backups untouched, one line, exit 1", async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip("mounting a small tmpfs needs root");
    const mnt = join(tmp.dir, "small-disk");
    mkdirSync(mnt);
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt], { encoding: "utf8" });
    if (mounted.status !== 0) ctx.skip(`cannot mount a tmpfs here: ${mounted.stderr.trim()}`);
    try {
      await s3.send(new PutObjectCommand({ Bucket: "full-bucket", Key: "1/r/artifacts/small.txt", Body: "small" }));
      const first = backup(mnt, "src", "full-bucket");
      expect(first.status, first.stderr).toBe(0);
      const good = JSON.parse(first.stdout).name;
      const before = spawnSync("sh", ["-c", `cd ${mnt}/${good} && find . -type f -exec sha256sum {} + | sort`], { encoding: "utf8" }).stdout;
      await s3.send(new PutObjectCommand({ Bucket: "full-bucket", Key: "1/r/artifacts/big.bin", Body: Buffer.alloc(16 << 20, 7) }));
      const full = backup(mnt, "src", "full-bucket");
      expect(full.status).toBe(1);
      // progress lines, then the error in one line (no stack trace)
      const lines = full.stderr.trim().split("\n");
      expect(lines.at(-1)).toMatch(/^backup: cannot write .*: ENOSPC — the disk is full: free space or choose another --to$/);
      expect(lines.every((l) => l.startsWith("backup: "))).toBe(true);
      expect(lines.filter((l) => /ENOSPC|Error/.test(l))).toHaveLength(1);
      expect(full.stdout).toBe("");
      const failed = backupsIn(mnt).filter((n) => n !== good && !n.startsWith("."));
      expect(failed).toHaveLength(1);
      expect(existsSync(join(mnt, failed[0], "INCOMPLETE"))).toBe(true);
      expect(existsSync(join(mnt, failed[0], "manifest.json"))).toBe(false);
      expect(spawnSync("sh", ["-c", `cd ${mnt}/${good} && find . -type f -exec sha256sum {} + | sort`], { encoding: "utf8" }).stdout).toBe(before);
      expect(before).toMatch(/manifest\.json/);
      expect(existsSync(join(mnt, ".lock"))).toBe(false); // released on failure
    } finally {
      spawnSync("umount", [mnt]);
      await s3.send(new DeleteObjectsCommand({ Bucket: "full-bucket", Delete: { Objects: [{ Key: "1/r/artifacts/small.txt" }, { Key: "1/r/artifacts/big.bin" }] } }));
    }
  });
});
