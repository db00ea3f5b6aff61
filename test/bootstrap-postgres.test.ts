// `--rotate postgres --force` prints the command that gives the database its new password. Run exactly that command
// (with `docker compose exec -T db psql` swapped for a local psql) against a real PostgreSQL and log in with the result.
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findBinary, POSTGRES_BIN_DIR } from "./support/binaries.ts";
import { initdbPath, startPostgres, type TestPostgres } from "./support/postgres.ts";
import { makeTempDir } from "./support/tmp.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "scripts", "bootstrap.ts");

function bootstrap(dir: string, args: string[] = []) {
  return spawnSync(process.execPath, ["--import", "tsx", CLI, "--dir", dir, ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, CI: "true" } });
}

async function canLogIn(server: TestPostgres, password: string): Promise<boolean> {
  const client = new pg.Client({ host: server.host, port: server.port, user: "mlflow", database: "mlflow", password });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch (error) {
    if (/password authentication failed/.test(String(error))) return false;
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

describe.skipIf(!initdbPath)("bootstrap --rotate postgres --force against a real PostgreSQL", () => {
  let server: TestPostgres;
  let project: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    server = await startPostgres();
    project = makeTempDir("bootstrap-pg");
    copyFileSync(join(ROOT, ".env.example"), join(project.dir, ".env.example"));
  });
  afterAll(async () => {
    await server?.stop();
    project?.cleanup();
  });

  it("prints a command that moves the database to the new password without putting it on a command line", async () => {
    const dir = project.dir;
    expect(bootstrap(dir).status).toBe(0);
    // What the postgres image does on first init with POSTGRES_USER/POSTGRES_DB/POSTGRES_PASSWORD_FILE.
    const oldPassword = readFileSync(join(dir, "secrets", "postgres_password"), "utf8");
    const quoted = (await server.query("select quote_literal($1) as q", [oldPassword])).rows[0].q;
    await server.query(`create role mlflow login password ${quoted}`);
    await server.createDatabase("mlflow");
    expect(await canLogIn(server, oldPassword)).toBe(true);

    const run = bootstrap(dir, ["--rotate", "postgres", "--force"]);
    expect(run.status, run.stderr).toBe(0);
    const newPassword = readFileSync(join(dir, "secrets", "postgres_password"), "utf8");
    expect(newPassword).not.toBe(oldPassword);
    expect(run.stdout).not.toContain(newPassword);

    // The printed heredoc, verbatim apart from how psql is reached.
    const lines = run.stdout.split("\n");
    const start = lines.findIndex((line) => line.includes("docker compose exec -T db psql"));
    expect(start).toBeGreaterThan(-1);
    const end = lines.findIndex((line, i) => i > start && line.trim() === "SQL");
    const command = lines
      .slice(start, end + 1)
      .map((line) => line.trim())
      .join("\n")
      .replace("docker compose exec -T db psql", `psql -h ${server.host} -p ${server.port}`);
    const psqlDir = findBinary("psql", [POSTGRES_BIN_DIR]) ? undefined : POSTGRES_BIN_DIR;
    const env = { ...process.env, PGPASSWORD: oldPassword, PATH: `${psqlDir ? `${psqlDir}:` : ""}${process.env.PATH}` };
    const psql = spawnSync("sh", ["-c", command], { cwd: dir, encoding: "utf8", env });
    expect(psql.status, psql.stderr).toBe(0);
    expect(psql.stdout).toContain("ALTER ROLE");

    expect(await canLogIn(server, newPassword)).toBe(true);
    expect(await canLogIn(server, oldPassword)).toBe(false);
  });
});
