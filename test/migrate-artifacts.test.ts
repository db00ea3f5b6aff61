// Artifacts: the fixture's files go to a real local S3 server, locations are rewritten, a re-run resumes.
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { cpSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareArtifacts, type ArtifactOptions } from "../scripts/lib/migrate/artifacts.ts";
import { migrate } from "../scripts/lib/migrate/migrate.ts";
import { createMlflowDatabase, FIXTURES, initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { s3ClientConfig, startS3Server, type S3Server } from "./support/s3.ts";
import { makeTempDir } from "./support/tmp.ts";

const FIXTURE_DB = join(FIXTURES, "mlflow-small.sqlite");

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe.skipIf(!initdbPath)("migrate artifacts", () => {
  let server: TestPostgres;
  let s3server: S3Server;
  let s3: S3Client;
  let tmp: { dir: string; cleanup: () => void };
  let artifacts: string;
  let opts: ArtifactOptions;
  beforeAll(async () => {
    [server, s3server] = await Promise.all([startPostgres(), startS3Server({ buckets: ["mlflow"] })]);
    s3 = new S3Client(s3ClientConfig(s3server));
    tmp = makeTempDir("migrate-artifacts");
    artifacts = join(tmp.dir, "mlartifacts");
    cpSync(join(FIXTURES, "mlflow-small-artifacts"), artifacts, { recursive: true });
    // The fixture's own data: most live runs logged no files (no folder), so the plan is accepted knowingly here.
    opts = { dir: artifacts, allowMissing: true, endpoint: s3server.endpoint, bucket: "mlflow", accessKeyId: s3server.accessKeyId, secretAccessKey: s3server.secretAccessKey };
  });
  afterAll(async () => {
    s3?.destroy();
    await Promise.all([server?.stop(), s3server?.stop()]);
    tmp?.cleanup();
  });

  const run = async (db: string, replace = false) => {
    const prepared = (await prepareArtifacts(FIXTURE_DB, opts, () => {}))!;
    const result = await migrate({
      from: FIXTURE_DB,
      to: server.url(db),
      replace,
      locationRewrites: prepared.rewrites,
      beforeCopy: async () => void (await prepared.upload(() => {})),
      beforeCommit: async () => void (await prepared.verify(() => {})),
    });
    return { result, plan: prepared.plan, uploaded: prepared.result()! };
  };

  it("uploads every file, rewrites the locations to mlflow-artifacts:/, reports what points at nothing", async () => {
    await createMlflowDatabase(server, "art");
    const { result, plan, uploaded } = await run("art");
    expect(plan.root).toBe("/srv/mlflow-local/mlartifacts");
    const local = filesUnder(artifacts);
    expect(local.length).toBeGreaterThan(5);
    expect(uploaded).toMatchObject({ uploaded: local.length, skipped: 0, verified: local.length });
    expect(result.artifactsVerified).toBe(true);
    expect(plan.kinds).toEqual({ local: 29, server: 0, remote: 0, reference: 3 }); // 5 experiments, 14 runs, 5 models, 5 traces; models:/, runs:/, "dummy-source"
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "mlflow" }));
    expect(listed.Contents!.map((o) => o.Key).sort()).toEqual(local);
    for (const key of local) {
      const got = await s3.send(new GetObjectCommand({ Bucket: "mlflow", Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(readFileSync(join(artifacts, key))), key).toBe(true);
    }
    // Locations: nothing local remains; the finished run points where its files now are.
    const left = await server.query<{ n: number }>(
      `select (select count(*) from runs where artifact_uri like 'file:%' or artifact_uri like '/%')
            + (select count(*) from experiments where artifact_location like 'file:%' or artifact_location like '/%')
            + (select count(*) from logged_models where artifact_location like 'file:%')
            + (select count(*) from model_versions where storage_location like 'file:%')
            + (select count(*) from trace_tags where key = 'mlflow.artifactLocation' and value like 'file:%') as n`,
      [],
      "art",
    );
    expect(Number(left.rows[0].n)).toBe(0);
    const run1 = await server.query<{ uri: string }>(`select artifact_uri as uri from runs where run_uuid = '9ba3cb9b174a440a8ec6859ecbb7e743'`, [], "art");
    expect(run1.rows[0].uri).toBe("mlflow-artifacts:/exp-A/9ba3cb9b174a440a8ec6859ecbb7e743/artifacts");
    expect(local).toContain("exp-A/9ba3cb9b174a440a8ec6859ecbb7e743/artifacts/config.json");
    expect(result.locations.find((l) => l.table === "runs")?.rows).toBe(14);
    // Runs that logged nothing have no folder: reported, not fatal.
    expect(plan.missing.length).toBeGreaterThan(0);
    expect(plan.missing.map((m) => m.location)).not.toContain("file:///srv/mlflow-local/mlartifacts/exp-A/9ba3cb9b174a440a8ec6859ecbb7e743/artifacts");
    expect(plan.missing).toContainEqual(expect.objectContaining({ table: "runs", id: "94fc8973c2594413aa12e6a8a6b2762d", live: true }));
  });

  it("a re-run resumes: objects already there (same size and sha256) are skipped, a changed or missing one is uploaded", async () => {
    const [first, second] = filesUnder(artifacts);
    await s3.send(new DeleteObjectCommand({ Bucket: "mlflow", Key: first })); // an interrupted upload
    await s3.send(new PutObjectCommand({ Bucket: "mlflow", Key: second, Body: "truncated" }));
    const { uploaded } = await run("art", true);
    expect(uploaded).toMatchObject({ uploaded: 2, skipped: filesUnder(artifacts).length - 2 });
    const got = await s3.send(new GetObjectCommand({ Bucket: "mlflow", Key: second }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(readFileSync(join(artifacts, second)))).toBe(true);
  });

  it("bad input: missing folder, missing bucket — one line, nothing written", async () => {
    await expect(prepareArtifacts(FIXTURE_DB, { ...opts, dir: join(tmp.dir, "nope") }, () => {})).rejects.toThrow(/artifacts folder not found/);
    await expect(prepareArtifacts(FIXTURE_DB, { ...opts, dir: undefined }, () => {})).rejects.toThrow(/file:\/\/ locations are under \/srv\/mlflow-local\/mlartifacts, which is not here — pass --artifacts DIR/);
    await expect(prepareArtifacts(FIXTURE_DB, { ...opts, allowMissing: false }, () => {})).rejects.toThrow(
      /^1\d of 1\d live runs\/models point at nothing \(e\.g\. run .*--allow-missing-artifacts if those runs\/models really logged no files; nothing was written$/,
    );
    await expect(prepareArtifacts(FIXTURE_DB, { ...opts, bucket: "missing" }, () => {})).rejects.toThrow(/bucket missing.*not found/);
  });
});
