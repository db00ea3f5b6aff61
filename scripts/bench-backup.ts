// npm run bench:backup -- [--metrics 5000000] [--artifact-mib 1024]
// Times npm run backup and npm run restore on a database with many metrics (the real fixture migrated in, plus generated
// metrics) and a bucket of artifacts, next to anchors measured in the same run on the same data: a plain
// `pg_dump -Fc` + `pg_restore --single-transaction`, and a plain S3 copy of every object (download, upload).
// npm run restore puts the objects and the database back at the same time, so its fair anchor does the same: plain
// `pg_restore -1` and the plain upload started together (the goal's ratio is against that one); the anchors one after
// the other (their sum) are printed too.
// PostgreSQL runs with its production settings (fsync on), as the stack runs it. A benchmark, not a test: it prints figures.
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createReadStream, createWriteStream, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseCli, runCli, UserError } from "./lib/cli.ts";
import { timed } from "./lib/bench-timing.ts";
import { findPgBin } from "./lib/backup/database.ts";
import { forEachLimited, listBucket } from "./lib/backup/objects.ts";
import { s3ClientConfig } from "./lib/s3-client.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres } from "../test/support/postgres.ts";
import { startS3Server } from "../test/support/s3.ts";
import { makeTempDir } from "../test/support/tmp.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

interface Row {
  method: string;
  seconds: number;
  bytes: number;
  rss?: number;
  note: string;
}

const MiB = 1 << 20;

async function main() {
  const { values } = parseCli("bench:backup", process.argv.slice(2), { metrics: { type: "string" }, "artifact-mib": { type: "string" }, "object-mib": { type: "string" } });
  if (values.help) {
    process.stdout.write(
      "Usage: npm run bench:backup -- [--metrics 1000000] [--artifact-mib 1024] [--object-mib 16]\n  --metrics N        generated metric rows on top of the fixture (the issue's figure: 5000000)\n  --artifact-mib N   artifact bytes in the bucket (default 1024 = 1 GiB)\n  --object-mib N     size of each big artifact object (default 16)\n",
    );
    return;
  }
  const metrics = Number(values.metrics ?? 1_000_000);
  const artifactMiB = Number(values["artifact-mib"] ?? 1024);
  const objectMiB = Number(values["object-mib"] ?? 16);
  for (const [name, n] of [["--metrics", metrics], ["--artifact-mib", artifactMiB], ["--object-mib", objectMiB]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive whole number`);
  }
  if (!initdbPath) throw new UserError("PostgreSQL 15 binaries not found (apt-get install postgresql-15)");
  const pgBin = findPgBin()!;
  const tmp = makeTempDir("bench-backup");
  const [server, s3server] = await Promise.all([startPostgres({ durable: true }), startS3Server({ buckets: ["src", "ours", "plain", "plain2"] })]);
  const s3 = new S3Client(s3ClientConfig(s3server));
  const env = { ...process.env, PGPASSWORD: server.password, AWS_ACCESS_KEY_ID: s3server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3server.secretAccessKey };
  try {
    // The data: the fixture migrated in (with its artifacts), then generated metrics and big artifact objects.
    process.stderr.write(`bench: preparing ${metrics} metrics and ${artifactMiB} MiB of artifacts...\n`);
    await createMlflowDatabase(server, "src");
    const pwfile = join(tmp.dir, "pw");
    writeFileSync(pwfile, server.password, { mode: 0o600 });
    const url = (db: string) => `postgresql://${server.user}@127.0.0.1:${server.port}/${db}`;
    const m = timed(process.execPath, ["--import", "tsx", "scripts/migrate.ts", "--from", join(FIXTURES, "mlflow-small.sqlite"), "--artifacts", join(FIXTURES, "mlflow-small-artifacts"), "--allow-missing-artifacts", "--to", url("src"), "--password-file", pwfile, "--s3-endpoint", s3server.endpoint, "--bucket", "src", "--yes"], env);
    if (m.status !== 0) throw new UserError(`migrating the fixture failed: ${m.stderr.trim().split("\n").at(-1)}`);
    await server.query(
      `insert into metrics (key, value, timestamp, run_uuid, step, is_nan)
       select 'metric_' || (i % 20), random(), 1700000000000 + i, r.run_uuid, i / 20, false
         from generate_series(1, $1::int) i, (select run_uuid from runs order by run_uuid limit 1) r`,
      [metrics],
      "src",
    );
    await server.query("vacuum analyze", [], "src");
    const objects = Math.max(1, Math.round(artifactMiB / objectMiB));
    const block = Buffer.alloc(objectMiB * MiB);
    await forEachLimited([...Array(objects).keys()], 2, async (i) => {
      block.fill(i % 251);
      await new Upload({ client: s3, params: { Bucket: "src", Key: `1/bench/artifacts/blob-${i}.bin`, Body: Buffer.from(block) } }).done();
    });
    const dbSize = (await server.query<{ n: string }>("select pg_database_size('src')::text as n")).rows[0].n;
    const srcObjects = await listBucket(s3, "src");
    const objectBytes = srcObjects.reduce((n, o) => n + o.size, 0);
    const pgVersion = (await server.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;
    const settings = (await server.query<{ name: string; setting: string }>("select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers') order by name")).rows;
    const results: Row[] = [];
    const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();

    // 1. npm run backup, as users run it (--db mode: local pg_dump; in the stack it runs inside the db container).
    const target = (db: string, bucket: string) => ["--db", url(db), "--password-file", pwfile, "--s3-endpoint", s3server.endpoint, "--bucket", bucket, "--json"];
    process.stderr.write("bench: npm run backup...\n");
    const b = timed(process.execPath, ["--import", "tsx", "scripts/backup.ts", ...target("src", "src"), "--to", join(tmp.dir, "ours")], env);
    if (b.status !== 0) throw new UserError(`backup failed: ${b.stderr.trim().split("\n").at(-1)}`);
    const backup = JSON.parse(b.stdout);
    const dumpBytes = backup.manifest.database.bytes as number;
    const total = dumpBytes + objectBytes;
    results.push({ method: "npm run backup (first, full)", seconds: b.seconds, bytes: total, rss: b.rssKiB, note: `dump ${(dumpBytes / MiB).toFixed(0)} MiB + ${srcObjects.length} objects, sha256 of every part` });
    const b2 = timed(process.execPath, ["--import", "tsx", "scripts/backup.ts", ...target("src", "src"), "--to", join(tmp.dir, "ours")], env);
    if (b2.status !== 0) throw new UserError(`second backup failed: ${b2.stderr.trim().split("\n").at(-1)}`);
    results.push({ method: "npm run backup (second, incremental)", seconds: b2.seconds, bytes: total, rss: b2.rssKiB, note: `${JSON.parse(b2.stdout).manifest.objects.copied} objects copied` });

    // 2. Anchor: plain pg_dump -Fc, and a plain S3 copy of every object to local files.
    process.stderr.write("bench: plain pg_dump -Fc + S3 copy...\n");
    const plainDir = join(tmp.dir, "plain");
    mkdirSync(join(plainDir, "objects"), { recursive: true });
    const d = timed(join(pgBin, "pg_dump"), ["-Fc", "-f", join(plainDir, "db.dump"), "-d", url("src")], env);
    if (d.status !== 0) throw new UserError(`pg_dump failed: ${d.stderr.trim()}`);
    const t0 = performance.now();
    await forEachLimited(srcObjects, 4, async (o) => {
      const r = await s3.send(new GetObjectCommand({ Bucket: "src", Key: o.key }));
      await pipeline(r.Body as Readable, createWriteStream(join(plainDir, "objects", encodeURIComponent(o.key))));
    });
    const copySeconds = (performance.now() - t0) / 1000;
    results.push({ method: "anchor: pg_dump -Fc + plain S3 download", seconds: d.seconds + copySeconds, bytes: total, rss: d.rssKiB, note: `pg_dump ${d.seconds.toFixed(1)} s + download ${copySeconds.toFixed(1)} s; no checks (RSS: pg_dump)` });

    // 3. npm run restore into a fresh MLflow schema and an empty bucket.
    await createMlflowDatabase(server, "ours");
    process.stderr.write("bench: npm run restore...\n");
    const r = timed(process.execPath, ["--import", "tsx", "scripts/restore.ts", ...target("ours", "ours"), "--from", join(tmp.dir, "ours", backup.name)], env);
    if (r.status !== 0) throw new UserError(`restore failed: ${r.stderr.trim().split("\n").at(-1)}`);
    const ph = JSON.parse(r.stdout).phases as { checks: number; objects: number; database: number; verify: number };
    results.push({
      method: "npm run restore",
      seconds: r.seconds,
      bytes: total,
      rss: r.rssKiB,
      note: `checks ${ph.checks.toFixed(1)} s; objects ${ph.objects.toFixed(1)} s and database ${ph.database.toFixed(1)} s at once (sha256 while streaming, one transaction); verify ${ph.verify.toFixed(1)} s`,
    });

    // 4. Anchors: pg_restore --single-transaction and a plain upload of the downloaded objects; one after the other,
    // then (into fresh targets) both at once, as npm run restore does.
    const pgRestore = (db: string) => timedAsync(join(pgBin, "pg_restore"), ["--single-transaction", "--no-owner", "-d", url(db), join(plainDir, "db.dump")], env);
    const upload = async (bucket: string) => {
      const t = performance.now();
      await forEachLimited(readdirSync(join(plainDir, "objects")), 4, async (f) => {
        const path = join(plainDir, "objects", f);
        await new Upload({ client: s3, params: { Bucket: bucket, Key: decodeURIComponent(f), Body: createReadStream(path), ContentLength: statSync(path).size } }).done();
      });
      return (performance.now() - t) / 1000;
    };
    await server.createDatabase("plain");
    process.stderr.write("bench: plain pg_restore, then S3 upload...\n");
    const pr = await pgRestore("plain");
    if (pr.status !== 0) throw new UserError(`pg_restore failed: ${pr.stderr.trim()}`);
    const upSeconds = await upload("plain");
    results.push({ method: "anchor: pg_restore -1, then S3 upload", seconds: pr.seconds + upSeconds, bytes: total, rss: pr.rssKiB, note: `pg_restore ${pr.seconds.toFixed(1)} s + upload ${upSeconds.toFixed(1)} s; no checks (RSS: pg_restore)` });
    await server.createDatabase("plain2");
    process.stderr.write("bench: plain pg_restore and S3 upload at once...\n");
    const t2 = performance.now();
    const [pr2, up2] = await Promise.all([pgRestore("plain2"), upload("plain2")]);
    if (pr2.status !== 0) throw new UserError(`pg_restore failed: ${pr2.stderr.trim()}`);
    results.push({ method: "anchor: pg_restore -1 + S3 upload at once", seconds: (performance.now() - t2) / 1000, bytes: total, rss: pr2.rssKiB, note: `pg_restore ${pr2.seconds.toFixed(1)} s, upload ${up2.toFixed(1)} s, together; no checks` });

    process.stdout.write(
      `\nBackup and restore: PostgreSQL ${pgVersion} (${settings.map((s) => `${s.name}=${s.setting}`).join(", ")}), database ${(Number(dbSize) / MiB).toFixed(0)} MiB ` +
        `(${metrics.toLocaleString("en-US")} generated metrics + the fixture), S3 server s3rver on loopback, ${srcObjects.length} objects / ${(objectBytes / MiB).toFixed(0)} MiB, ` +
        `backups on the local disk (${tmp.dir}); 4 objects in flight; node ${process.version}\n\n`,
    );
    process.stdout.write(`${"method".padEnd(42)} ${"wall s".padStart(8)} ${"MB/s".padStart(8)} ${"peak RSS".padStart(10)}  note\n`);
    for (const row of results) {
      const rss = row.rss ? `${Math.round(row.rss / 1024)} MiB` : "-";
      process.stdout.write(`${row.method.padEnd(42)} ${row.seconds.toFixed(1).padStart(8)} ${(row.bytes / 1e6 / row.seconds).toFixed(0).padStart(8)} ${rss.padStart(10)}  ${row.note}\n`);
    }
    const ratio = (a: string, b: string) => (results.find((x) => x.method === a)!.seconds / results.find((x) => x.method === b)!.seconds).toFixed(2);
    process.stdout.write(`\nbackup / anchor:  ${ratio("npm run backup (first, full)", "anchor: pg_dump -Fc + plain S3 download")} (goal: at most 1.30)\n`);
    process.stdout.write(`restore / anchor: ${ratio("npm run restore", "anchor: pg_restore -1 + S3 upload at once")} (goal: at most 1.30; against the anchors one after the other: ${ratio("npm run restore", "anchor: pg_restore -1, then S3 upload")})\n`);
    process.stdout.write(`load average before / after: ${loadBefore} / ${readFileSync("/proc/loadavg", "utf8").trim()} (2 cores; noisy when above ~1)\n`);
  } finally {
    s3.destroy();
    await Promise.all([server.stop(), s3server.stop()]);
    tmp.cleanup();
  }
}

/** Like timed(), without blocking this process (the anchor that runs two things at once needs that). */
function timedAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; rssKiB?: number; stderr: string; status: number | null }> {
  const t0 = performance.now();
  const child = spawn("/usr/bin/time", ["-f", "RSSKIB=%M", cmd, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve) =>
    child.once("close", (status) => {
      const m = /RSSKIB=(\d+)/.exec(stderr);
      resolve({ seconds: (performance.now() - t0) / 1000, rssKiB: m ? Number(m[1]) : undefined, stderr: stderr.replace(/RSSKIB=\d+\n?/, ""), status });
    }),
  );
}

await runCli("bench:backup", main);
