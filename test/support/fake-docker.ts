// A stand-in `docker` executable for the migrate tests (no Docker engine here): put `dir` first on PATH. It appends
// every argv as one JSON line to <dir>/argv.jsonl and acts from <dir>/state.json:
//   services     [{ Service, State, Health? }] for `compose ps --format json`; `compose stop/start SERVICE` change them:
//                a service with a Health is "starting" after start, then healthAfterStart ("healthy" by default)
//                once psUntilHealthy more `compose ps` calls have seen it starting; forwarderHealth lists the
//                `compose run` containers too, as Compose does
//   pgPort/s3Port what `docker port NAME 5432/tcp` / `9000/tcp` print (127.0.0.1:PORT): the tests' real servers
//   upgradeTo    `compose run … mlflow db upgrade sqlite:////src/copy.db` sets alembic_version of the mounted copy to it;
//                "newer" makes it fail the way alembic does for an unknown (newer) revision
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

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
}

export function installFakeDocker(dir: string, state: FakeDockerState) {
  const bin = join(dir, "docker");
  writeFileSync(bin, SCRIPT);
  chmodSync(bin, 0o755);
  writeFileSync(join(dir, "argv.jsonl"), "");
  const betterSqlite3 = new URL("../../node_modules/better-sqlite3", import.meta.url).pathname;
  writeFileSync(join(dir, "state.json"), JSON.stringify({ services: [], ...state, betterSqlite3 }));
  return {
    /** PATH with the fake first. */
    path: `${dir}:${process.env.PATH}`,
    calls: (): string[][] => readFileSync(join(dir, "argv.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
    state: (): FakeDockerState => JSON.parse(readFileSync(join(dir, "state.json"), "utf8")),
  };
}
