// The docker runner migrate uses: arguments reach the program as they are, exits are reported, a missing docker is one
// line; and local-stack mode's restart of MLflow, against a stand-in docker (test/support/fake-docker.ts).
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { check, docker } from "../scripts/lib/migrate/docker.ts";
import { stopMlflow } from "../scripts/lib/migrate/local-stack.ts";
import { UserError } from "../scripts/lib/cli.ts";
import { installFakeDocker, type FakeDockerState } from "./support/fake-docker.ts";
import { makeTempDir } from "./support/tmp.ts";

describe("docker runner", () => {
  it("passes each argument unchanged (no shell splitting) and reports stdout, stderr and the exit code", async () => {
    const result = await docker("/", "sh").run(["-c", 'printf "%s|" "$@"; echo oops >&2; exit 3', "sh", "a b", "it's", "$HOME", ";rm -rf x"]);
    expect(result).toEqual({ code: 3, stdout: "a b|it's|$HOME|;rm -rf x|", stderr: "oops\n" });
    expect(() => check(result, "sh -c")).toThrow(new UserError("sh -c failed: oops"));
  });

  it("says in one line that docker is missing", async () => {
    await expect(docker("/", "no-such-docker-for-tests").run(["ps"])).rejects.toThrow(/^docker not found on PATH — install Docker/);
  });
});

describe("local-stack mode restarts MLflow and waits for it (issue 8, finding 4: a smoke right after migrate met 502s)", () => {
  const setup = (state: FakeDockerState) => {
    const { dir, cleanup } = makeTempDir("fake-docker-health");
    cleanups.push(cleanup);
    const fake = installFakeDocker(dir, state);
    return { fake, d: docker(dir, join(dir, "docker")) };
  };
  const cleanups: (() => void)[] = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));

  it("returns only once MLflow's health check passes", async () => {
    const { fake, d } = setup({ services: [{ Service: "mlflow", State: "running", Health: "healthy" }], psUntilHealthy: 3 });
    const restart = await stopMlflow(d, undefined, () => {}, { pollMs: 10 });
    expect(fake.state().services![0]).toMatchObject({ State: "exited" });
    await restart!();
    expect(fake.state().services![0]).toMatchObject({ State: "running", Health: "healthy" });
    const polls = fake.calls().filter((argv) => argv[1] === "ps").length;
    expect(polls).toBeGreaterThanOrEqual(4); // stopMlflow's own, then until healthy
  });

  it("says so in one line when MLflow turns unhealthy or does not get healthy in time", async () => {
    const sick = setup({ services: [{ Service: "mlflow", State: "running", Health: "healthy" }], psUntilHealthy: 1, healthAfterStart: "unhealthy" });
    const restart = await stopMlflow(sick.d, undefined, () => {}, { pollMs: 10 });
    await expect(restart!()).rejects.toThrow(/^MLflow is unhealthy after the migration — the data is committed; see docker compose logs mlflow$/);
    const slow = setup({ services: [{ Service: "mlflow", State: "running", Health: "healthy" }], psUntilHealthy: 1000 });
    const restartSlow = await stopMlflow(slow.d, undefined, () => {}, { pollMs: 10, timeoutMs: 100 });
    await expect(restartSlow!()).rejects.toThrow(/^MLflow is not healthy 0 s after the migration/);
  });

  it("ignores migrate's own forwarder, which Compose lists as one more mlflow container (never healthy)", async () => {
    const { fake, d } = setup({ services: [{ Service: "mlflow", State: "running", Health: "healthy" }], psUntilHealthy: 2, forwarderHealth: "starting" });
    await d.compose(["run", "-d", "--rm", "--no-deps", "--name", "mlflow-migrate-forward-1-abcdef", "mlflow", "python3"]);
    const restart = await stopMlflow(d, undefined, () => {}, { pollMs: 10, timeoutMs: 2000 });
    await restart!();
    expect(fake.state().services![0]).toMatchObject({ Health: "healthy" });
  });

  it("a service without a health check: running is enough", async () => {
    const { d } = setup({ services: [{ Service: "mlflow", State: "running" }] });
    const restart = await stopMlflow(d, undefined, () => {}, { pollMs: 10, timeoutMs: 100 });
    await restart!();
  });
});
