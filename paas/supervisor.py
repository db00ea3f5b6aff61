#!/usr/bin/env python3
"""Runs MLflow and the proxy in one container (Heroku, Render, Fly.io, Cloud Run), as the single-container image's
entrypoint: both entrypoints start as child processes, each in its own process group, their output goes to stdout
line by line with a "mlflow | " or "proxy  | " prefix, SIGTERM/SIGINT are forwarded to both, and when either one
exits on its own the other is stopped and the container ends with a non-zero code (so the platform restarts it).

Environment (everything else is passed on; see the README "Single container"):
  PORT               where the proxy listens, set by the platform (default 8080)
  MLFLOW_PORT        where MLflow listens inside the container, on 127.0.0.1 only (default 5000; must differ from PORT)
  SUPERVISOR_MLFLOW_ENTRYPOINT, SUPERVISOR_PROXY_ENTRYPOINT
                     the two entrypoints (defaults: the image's paths; the tests point them at the repository's files)
  SUPERVISOR_STOP_TIMEOUT  seconds each process gets to stop before SIGKILL (default 20)

Each process sees only what it needs: MLflow never gets AUTH_USERNAME/AUTH_PASSWORD, the proxy never gets the
database URL or the S3 keys. Python 3 only, standard library: the MLflow image has it (it has no other runtime).
"""

import os
import signal
import subprocess
import sys
import threading
import time

PROXY_ONLY = ("AUTH_USERNAME", "AUTH_PASSWORD")
MLFLOW_ONLY = (
    "DATABASE_URL", "DB_URL", "MLFLOW_BACKEND_STORE_URI", "POSTGRES_PASSWORD",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)

output_lock = threading.Lock()


def say(message):
    with output_lock:
        sys.stdout.buffer.write(b"supervisor | " + message.encode() + b"\n")
        sys.stdout.buffer.flush()


def fail(message):
    say("error: " + message)
    sys.exit(1)


def port_from(name, default):
    value = os.environ.get(name) or default
    if not value.isdigit() or not 0 < int(value) < 65536:
        fail("%s must be a port number, found %r" % (name, value))
    return value


def relay(name, stream):
    """Copies a child's output to stdout line by line, each line prefixed with the child's name."""
    prefix = ("%-6s | " % name).encode()
    for line in iter(stream.readline, b""):
        with output_lock:
            sys.stdout.buffer.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
            sys.stdout.buffer.flush()
    stream.close()


class StartError(Exception):
    pass


class Child:
    def __init__(self, name, command, env):
        self.name = name
        try:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach MLflow's workers too
            )
        except OSError as error:
            raise StartError("cannot start %s (%s): %s" % (name, command[0], error.strerror))
        self.relay = threading.Thread(target=relay, args=(name, self.process.stdout), daemon=True)
        self.relay.start()

    def signal_group(self, signum):
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def exit_code(self):
        """The shell convention: the code, or 128 + signal number for a process killed by a signal."""
        code = self.process.returncode
        return 128 - code if code < 0 else code


def stop_all(children, timeout):
    """SIGTERM to every group, SIGKILL to whatever is left after the timeout; True when all stopped in time."""
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    in_time = True
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say("%s did not stop within %gs: killing it" % (child.name, timeout))
            in_time = False
            child.signal_group(signal.SIGKILL)
            child.process.wait()
        child.signal_group(signal.SIGKILL)  # leftovers of its group (workers) once the leader is gone
    for child in children:
        child.relay.join(timeout=2)
    return in_time


def main():
    port = port_from("PORT", "8080")
    mlflow_port = port_from("MLFLOW_PORT", "5000")
    if port == mlflow_port:
        fail("PORT and MLFLOW_PORT are both %s: set MLFLOW_PORT to another free port" % port)
    timeout = float(os.environ.get("SUPERVISOR_STOP_TIMEOUT") or 20)
    mlflow_entrypoint = os.environ.get("SUPERVISOR_MLFLOW_ENTRYPOINT") or "/usr/local/bin/docker-entrypoint.sh"
    proxy_entrypoint = os.environ.get("SUPERVISOR_PROXY_ENTRYPOINT") or "/usr/local/bin/proxy-entrypoint.sh"

    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    mlflow_env = {k: v for k, v in base.items() if k not in PROXY_ONLY and k != "PORT"}
    mlflow_env.update(MLFLOW_HOST="127.0.0.1", MLFLOW_PORT=mlflow_port)
    proxy_env = {k: v for k, v in base.items() if k not in MLFLOW_ONLY}
    proxy_env.update(PORT=port, MLFLOW_UPSTREAM="127.0.0.1:" + mlflow_port)

    requested = []

    def on_signal(signum, _frame):
        if not requested:
            say("%s received: stopping mlflow and proxy" % signal.Signals(signum).name)
        requested.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    say("starting mlflow on 127.0.0.1:%s and the proxy on :%s" % (mlflow_port, port))
    children = []
    try:
        children.append(Child("mlflow", [mlflow_entrypoint, "server"], mlflow_env))
        children.append(Child("proxy", [proxy_entrypoint], proxy_env))
    except StartError as error:
        stop_all(children, timeout)
        fail(str(error))

    while True:
        if requested:
            return 0 if stop_all(children, timeout) else 1
        ended = next((child for child in children if child.process.poll() is not None), None)
        if ended is not None:
            code = ended.exit_code()
            others = [child for child in children if child is not ended]
            say("%s exited with code %d: stopping %s" % (ended.name, code, ", ".join(c.name for c in others)))
            stop_all(children, timeout)
            return code if code != 0 else 1
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
