// Stand-in images for the stack test (see test/stack/stand-ins/README.md): built locally under the exact image names
// the compose files use, FROM a trixie base made with `debootstrap --variant=minbase` and `docker import`.
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import YAML from "yaml";
import { $ } from "zx";

const ROOT = join(import.meta.dirname, "../..");
const STAND_INS = join(import.meta.dirname, "stand-ins");
const FIXTURES = join(ROOT, "test/fixtures/mlflow-3.11");
export const BASE_IMAGE = "mlflow-stack-test/trixie-base";
const ROOTFS_IMAGE = "mlflow-stack-test/trixie-rootfs";

export interface StandIn {
  /** Folder under test/stack/stand-ins. */
  folder: string;
  /** The image name a compose file (or mlflow/Dockerfile) uses. */
  image: string;
  /** Where the name was read. */
  from: string;
  /** test/stack/stand-ins/programs/<name>.ts bundled into the context as <name>.mjs, with the node binary. */
  programs?: string[];
  files?: string[];
  buildArgs?: Record<string, string>;
}

function serviceImage(file: string, service: string): string {
  // logLevel error: the overlays' !override/!reset tags are Compose's, not YAML's; only image: is read here.
  const doc = YAML.parse(readFileSync(join(ROOT, file), "utf8"), { logLevel: "error" }) as {
    services: Record<string, { image?: string }>;
  };
  const image = doc.services?.[service]?.image;
  if (!image) throw new Error(`${file}: service ${service} has no image:`);
  return image;
}

/** The one image that several services share (fails when they differ: each would need its own stand-in). */
function sameImage(file: string, names: string[]): string {
  const images = new Set(names.map((name) => serviceImage(file, name)));
  if (images.size !== 1) throw new Error(`${file}: services ${names.join(", ")} use different images (${[...images].join(", ")})`);
  return [...images][0];
}

/** The base image of mlflow/Dockerfile, with MLFLOW_VERSION as the stack builds it (its ARG default otherwise). */
function mlflowBaseImage(mlflowVersion: string | undefined): string {
  const dockerfile = readFileSync(join(ROOT, "mlflow/Dockerfile"), "utf8");
  const from = /^FROM\s+(\S+)/m.exec(dockerfile)?.[1];
  const version = mlflowVersion ?? /^ARG MLFLOW_VERSION=(\S+)/m.exec(dockerfile)?.[1];
  if (!from || !version) throw new Error("mlflow/Dockerfile: no FROM or no MLFLOW_VERSION");
  return from.replace("${MLFLOW_VERSION}", version);
}

export function standIns(mlflowVersion?: string): StandIn[] {
  const mlflow = mlflowBaseImage(mlflowVersion);
  return [
    { folder: "postgres", image: serviceImage("compose.yml", "db"), from: "compose.yml services.db" },
    // The server and its mc in one image, as Silo ships them; createbuckets runs on it too (its image is the same).
    { folder: "silo", image: sameImage("compose.yml", ["minio", "createbuckets"]), from: "compose.yml services.minio and createbuckets", programs: ["silo", "mc"] },
    {
      folder: "mlflow",
      image: mlflow,
      from: "mlflow/Dockerfile FROM",
      programs: ["mlflow"],
      files: [join(FIXTURES, "postgres-schema.sql"), join(FIXTURES, "alembic-head.txt"), join(FIXTURES, "api-transcript.jsonl")],
      buildArgs: { MLFLOW_STAND_IN_VERSION: mlflow.replace(/^.*:v?/, "").replace(/-full$/, "") },
    },
    { folder: "caddy", image: serviceImage("compose.yml", "proxy"), from: "compose.yml services.proxy" },
    { folder: "nginx", image: serviceImage("compose.nginx.yml", "proxy"), from: "compose.nginx.yml services.proxy" },
  ];
}

const exists = async (image: string) => (await $({ quiet: true, nothrow: true })`docker image inspect ${image}`).exitCode === 0;

/** debootstrap (minbase, trixie) -> docker import -> + apt lists. Skipped when the base image exists already. */
async function buildBase(log: (line: string) => void, mirror: string): Promise<void> {
  if (await exists(BASE_IMAGE)) return log(`${BASE_IMAGE}: exists`);
  if (!(await exists(ROOTFS_IMAGE))) {
    const dir = mkdtempSync(join(tmpdir(), "stack-rootfs-"));
    try {
      log(`debootstrap --variant=minbase trixie (${mirror})`);
      await $({ quiet: true })`debootstrap --variant=minbase trixie ${join(dir, "rootfs")} ${mirror}`;
      await $({ quiet: true })`tar -C ${join(dir, "rootfs")} -c . | docker import - ${ROOTFS_IMAGE}`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const context = mkdtempSync(join(tmpdir(), "stack-base-"));
  try {
    copyFileSync(join(STAND_INS, "base.Dockerfile"), join(context, "Dockerfile"));
    await $({ quiet: true })`docker build -q -t ${BASE_IMAGE} --build-arg MIRROR=${mirror} ${context}`;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

async function buildStandIn(standIn: StandIn): Promise<void> {
  const context = mkdtempSync(join(tmpdir(), `stack-${standIn.folder}-`));
  try {
    cpSync(join(STAND_INS, standIn.folder), context, { recursive: true });
    if (standIn.programs?.length) copyFileSync(process.execPath, join(context, "node"));
    for (const program of standIn.programs ?? []) {
      await build({
        entryPoints: [join(STAND_INS, "programs", `${program}.ts`)],
        outfile: join(context, `${program}.mjs`),
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        logLevel: "error",
        // CommonJS dependencies (s3rver, pg) call require(): give the ES module one.
        banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
        external: ["pg-native"],
      });
    }
    for (const file of standIn.files ?? []) copyFileSync(file, join(context, file.split("/").at(-1)!));
    const args = Object.entries(standIn.buildArgs ?? {}).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
    await $({ quiet: true })`docker build -q -t ${standIn.image} ${args} ${context}`;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** Builds every stand-in (two at a time: most of the work is downloading packages). */
export async function buildStandIns(
  log: (line: string) => void,
  { mlflowVersion, mirror = "http://deb.debian.org/debian", only }: { mlflowVersion?: string; mirror?: string; only?: string[] } = {},
) {
  await buildBase(log, mirror);
  const queue = standIns(mlflowVersion).filter((s) => !only?.length || only.includes(s.folder));
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const started = performance.now();
      await buildStandIn(next);
      log(`${next.image} (${next.from}): built from stand-ins/${next.folder} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
  };
  await Promise.all([worker(), worker()]);
}
