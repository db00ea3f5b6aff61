// A stand-in `docker` executable for the migrate tests (no Docker engine here): put `dir` first on PATH. It appends
// every argv as one JSON line to <dir>/argv.jsonl and acts from <dir>/state.json:
//   services     [{ Service, State, Health? }] for `compose ps --format json`; `compose stop/start SERVICE` change them:
//                a service with a Health is "starting" after start, then healthAfterStart ("healthy" by default)
//                once psUntilHealthy more `compose ps` calls have seen it starting; forwarderHealth lists the
//                `compose run` containers too, as Compose does
//   pgPort/s3Port what `docker port NAME 5432/tcp` / `9000/tcp` print (127.0.0.1:PORT): the tests' real servers
//   upgradeTo    `compose run … mlflow db upgrade sqlite:////src/copy.db` sets alembic_version of the mounted copy to it;
//                "newer" makes it fail the way alembic does for an unknown (newer) revision; for the stack's own
//                database (`compose run … mlflow db-upgrade`) it is written to alembic_version of POSTGRES_DB (.env)
//   exec         `compose exec -T db pg_dump|pg_restore|psql …` runs the local program against 127.0.0.1:pgPort with the
//                password from secrets/postgres_password (the db container's local socket needs none)
//   buildFails   versions (MLFLOW_VERSION in the environment) whose `compose build` fails like a missing base image
//   dbUpgradeFails `compose run … mlflow db-upgrade` half-applies (alembic_version = 'halfway') and fails
//   unhealthy    versions whose `compose up --wait` fails as unhealthy; `up` records the version in state.started
//   signalAt     { call, pid, signal }: the first docker call whose argv (joined by spaces) contains `call` first sends
//                `signal` (default SIGINT) to `pid` (the CLI under test, as a Ctrl-C would), then does its work as usual
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { POSTGRES_BIN_DIR } from "./binaries.ts";

const SCRIPT = String.raw`#!/usr/bin/env node
const fs = require("node:fs");
const path = require("node:path");
const dir = __dirname;
const args = process.argv.slice(2);
fs.appendFileSync(path.join(dir, "argv.jsonl"), JSON.stringify(args) + "\n");
const statePath = path.join(dir, "state.json");
const state = JSON.parse(fs.readFileSync(statePath, "utf8"));
const save = () => fs.writeFileSync(statePath, JSON.stringify(state));
const out = (s) => process.stdout.write(s);
if (state.signalAt && !state.signalAt.sent && args.join(" ").includes(state.signalAt.call)) {
  state.signalAt.sent = true;
  save();
  try { process.kill(state.signalAt.pid, state.signalAt.signal || "SIGINT"); } catch {}
}
const dotenv = () => Object.fromEntries(fs.readFileSync(".env", "utf8").split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
if (args[0] === "compose") {
  const sub = args[1];
  if (sub === "ps") {
    for (const s of state.services) if (s.Health === "starting" && s.psUntilHealthy !== undefined && s.psUntilHealthy-- <= 0) s.Health = state.healthAfterStart || "healthy";
    save();
    const forwarders = state.forwarderHealth ? (state.containers || []).map((name) => ({ Name: name, Service: "mlflow", State: "running", Health: state.forwarderHealth })) : [];
    out([...forwarders, ...state.services.map((s) => ({ Name: "stack-" + s.Service + "-1", Service: s.Service, State: s.State, Health: s.Health || "" }))].map((c) => JSON.stringify(c)).join("\n") + "\n");
  } else if (sub === "stop" || sub === "start") {
    for (const s of state.services)
      if (args.slice(2).includes(s.Service)) {
        s.State = sub === "stop" ? "exited" : "running";
        s.Health = sub === "stop" ? "" : s.Health === undefined ? undefined : "starting";
        s.psUntilHealthy = state.psUntilHealthy || 0;
      }
    save();
  } else if (sub === "exec") {
    const tool = args[args.indexOf("db") + 1];
    const rest = args.slice(args.indexOf("db") + 2);
    const env = { ...process.env, PGPASSWORD: fs.readFileSync("secrets/postgres_password", "utf8").trim() };
    const conn = tool === "pg_restore" ? [] : ["-h", "127.0.0.1", "-p", String(state.pgPort)];
    const r = require("node:child_process").spawnSync(path.join(state.pgBin, tool), [...conn, ...rest], { stdio: "inherit", env });
    process.exit(r.status === null ? 1 : r.status);
  } else if (sub === "build") {
    const version = process.env.MLFLOW_VERSION || dotenv().MLFLOW_VERSION;
    if ((state.buildFails || []).includes(version)) {
      process.stderr.write("failed to solve: ghcr.io/mlflow/mlflow:v" + version + ": not found\n");
      process.exit(1);
    }
    state.built = [...(state.built || []), version];
    save();
  } else if (sub === "up") {
    const version = process.env.MLFLOW_VERSION || dotenv().MLFLOW_VERSION;
    state.started = [...(state.started || []), version];
    for (const s of state.services) if (args.includes(s.Service)) s.State = "running";
    save();
    if ((state.unhealthy || []).includes(version)) {
      process.stderr.write("container stack-mlflow-1 is unhealthy\n");
      process.exit(1);
    }
  } else if (sub === "run" && args.includes("db-upgrade")) {
    const sql = (q) => require("node:child_process").spawnSync(path.join(state.pgBin, "psql"), ["-X", "-q", "-h", "127.0.0.1", "-p", String(state.pgPort), "-U", dotenv().POSTGRES_USER, "-d", dotenv().POSTGRES_DB, "-c", q], { stdio: "inherit", env: { ...process.env, PGPASSWORD: fs.readFileSync("secrets/postgres_password", "utf8").trim() } });
    state.upgradedWith = [...(state.upgradedWith || []), process.env.MLFLOW_VERSION || dotenv().MLFLOW_VERSION];
    save();
    if (state.dbUpgradeFails) {
      sql("update alembic_version set version_num = 'halfway'");
      process.stderr.write("sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateColumn) column already exists\n");
      process.exit(1);
    }
    sql("update alembic_version set version_num = '" + state.upgradeTo + "'");
  } else if (sub === "run") {
    const i = args.indexOf("upgrade");
    if (i > 0 && args[i - 1] === "db") {
      const mount = args[args.indexOf("-v") + 1];
      const hostDir = mount.slice(0, mount.lastIndexOf(":/src"));
      const file = path.join(hostDir, args[i + 1].replace("sqlite:////src/", ""));
      if (state.upgradeTo === "newer") {
        process.stderr.write("ERROR [alembic.util.messaging] Can't locate revision identified by 'ffffffffffff'\n");
        process.exit(1);
      }
      const Database = require(state.betterSqlite3);
      const db = new Database(file);
      db.prepare("update alembic_version set version_num = ?").run(state.upgradeTo);
      db.close();
    } else {
      const name = args[args.indexOf("--name") + 1];
      state.containers = [...(state.containers || []), name];
      save();
      out("0123456789abcdef\n");
    }
  }
  process.exit(0);
}
if (args[0] === "logs") {
  out("mlflow-migrate forwarder ready\n");
} else if (args[0] === "port") {
  out("127.0.0.1:" + (args[2] === "5432/tcp" ? state.pgPort : state.s3Port) + "\n");
} else if (args[0] === "stop") {
  state.containers = (state.containers || []).filter((c) => c !== args[args.length - 1]);
  save();
}
process.exit(0);
`;

export interface FakeDockerState {
  services?: { Service: string; State: string; Health?: string }[];
  psUntilHealthy?: number;
  healthAfterStart?: string;
  /** When set, `compose ps` also lists the `compose run` containers (the forwarder) as service mlflow, with this health. */
  forwarderHealth?: string;
  pgPort?: number;
  s3Port?: number;
  upgradeTo?: string;
  containers?: string[];
  buildFails?: string[];
  dbUpgradeFails?: boolean;
  unhealthy?: string[];
  built?: string[];
  started?: string[];
  upgradedWith?: string[];
  signalAt?: { call: string; pid: number; signal?: string; sent?: boolean };
}

export function installFakeDocker(dir: string, state: FakeDockerState) {
  const bin = join(dir, "docker");
  writeFileSync(bin, SCRIPT);
  chmodSync(bin, 0o755);
  writeFileSync(join(dir, "argv.jsonl"), "");
  const betterSqlite3 = new URL("../../node_modules/better-sqlite3", import.meta.url).pathname;
  writeFileSync(join(dir, "state.json"), JSON.stringify({ services: [], ...state, betterSqlite3, pgBin: POSTGRES_BIN_DIR }));
  return {
    /** PATH with the fake first. */
    path: `${dir}:${process.env.PATH}`,
    calls: (): string[][] => readFileSync(join(dir, "argv.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
    state: (): FakeDockerState => JSON.parse(readFileSync(join(dir, "state.json"), "utf8")),
  };
}
