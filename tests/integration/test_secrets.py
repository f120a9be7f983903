"""Broker and result-store passwords never reach an output: the worker's banner and log, the
task's client, ``report``, ``inspect conf`` / ``stats`` / ``report``, ``status``, and the
errors of a wrong port, a wrong password and a wrong vhost.

Each scenario gives its servers a distinctive password: a private ``redis-server
--requirepass`` on a free port; a RabbitMQ user of its own on this run's vhost; a PostgreSQL
role of its own with its own database. Every output of every command is captured and
searched for the password.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_SERVER_URL,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    rabbitmq_url,
    require_postgres,
)

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DEADLINE = 45.0

APP = textwrap.dedent(
    """
    from celeriac import Celery

    app = Celery("{name}", broker={broker!r}, backend={backend!r})
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1


    @app.task(name="secrets.add")
    def add(x, y):
        return x + y
    """
)


#: Runs celeriac commands one after another in one process (see ``Project.start``).
RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, sys, traceback
    from celeriac.cli.main import main

    last = ""
    for args in json.loads(sys.argv[1]):
        args = [a.replace("{last}", last) for a in args]
        buffer = io.StringIO()
        print("=== " + " ".join(args), file=sys.stderr, flush=True)
        with contextlib.redirect_stdout(buffer):
            try:
                code = main(args)
            except Exception:
                traceback.print_exc()
                code = -1
        out = buffer.getvalue()
        last = out.strip().splitlines()[-1] if out.strip() else ""
        print(json.dumps({"args": args, "code": code, "stdout": out}), flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Scenario:
    """An app's URLs (with ``password``), and the same URLs made wrong in one way each."""

    name: str
    password: str
    broker: str
    backend: str
    wrong: dict[str, tuple[str, str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    password = f"redis-canary-{uuid.uuid4().hex}"
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--requirepass", password, "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("the private redis-server did not start")
            time.sleep(0.05)
    yield port, password
    process.send_signal(signal.SIGTERM)
    process.wait(DEADLINE)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def rabbitmq_user() -> Iterator[tuple[str, str, str]]:
    """A RabbitMQ user of this module, with a distinctive password, on the run's vhost."""
    vhost = rabbitmq_url().rsplit("/", 1)[1]
    user, password = f"celeriac-secrets-{os.getpid()}", f"amqp-canary-{uuid.uuid4().hex}"
    _rabbitmqctl("add_user", user, password)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield user, password, vhost
    finally:
        _rabbitmqctl("delete_user", user)


@pytest.fixture(scope="module")
def postgres_role() -> Iterator[tuple[str, str, str]]:
    """A PostgreSQL role with a distinctive password and a database it owns."""
    import psycopg

    require_postgres()
    role = database = f"celeriac_secrets_{os.getpid()}"
    password = f"pg-canary-{uuid.uuid4().hex}"
    admin = f"{POSTGRES_SERVER_URL}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
    try:
        yield role, password, database
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module", params=["redis", "amqp+postgresql"])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    if request.param == "redis":
        port, password = request.getfixturevalue("private_redis")
        url = f"redis://:{password}@127.0.0.1:{port}"
        closed = f"redis://:{password}@127.0.0.1:{free_port()}"
        wrong_pw = f"redis://:wrong-{password}@127.0.0.1:{port}"
        return Scenario(
            "redis",
            password,
            f"{url}/0",
            f"{url}/1",
            wrong={
                "port": (f"{closed}/0", f"{closed}/1"),
                "password": (f"{wrong_pw}/0", f"{wrong_pw}/1"),
            },
        )
    user, password, vhost = request.getfixturevalue("rabbitmq_user")
    role, pg_password, database = request.getfixturevalue("postgres_role")
    amqp = f"amqp://{user}:{password}@{RABBITMQ_HOST}:{RABBITMQ_PORT}"
    pg = f"db+postgresql://{role}:{pg_password}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"
    closed_pg = f"db+postgresql://{role}:{pg_password}@{POSTGRES_HOST}:{free_port()}/{database}"
    return Scenario(
        "amqp",
        # One search string per secret: both are checked (see `secrets` below).
        f"{password}\n{pg_password}",
        f"{amqp}/{vhost}",
        pg,
        wrong={
            "port": (f"amqp://{user}:{password}@{RABBITMQ_HOST}:{free_port()}/{vhost}", closed_pg),
            "password": (f"{amqp.replace(password, 'wrong-' + password)}/{vhost}", pg),
            "vhost": (f"{amqp}/no-such-vhost-{uuid.uuid4().hex[:8]}", pg),
        },
    )  # fmt: skip


def secrets(scenario: Scenario) -> list[str]:
    return scenario.password.split("\n")


class Project:
    """A directory with the scenario's app modules; runs ``celeriac`` commands in it."""

    def __init__(self, directory: Path, scenario: Scenario) -> None:
        self.directory = directory
        self.outputs: dict[str, str] = {}
        modules = {"good": (scenario.broker, scenario.backend), **scenario.wrong}
        for name, (broker, backend) in modules.items():
            source = APP.format(name=name, broker=broker, backend=backend)
            (directory / f"app_{name}.py").write_text(source)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(directory), str(REPO)]))

    def command(self, app: str, *args: str) -> list[str]:
        """``python -m celeriac -A app_<app> <args>``."""
        return [sys.executable, "-m", "celeriac", "-A", f"app_{app}", *args]

    def start(self, *commands: tuple[str, ...]) -> subprocess.Popen[str]:
        """One interpreter running ``(app, *args)`` commands in turn (interpreters are the
        cost on a busy machine); ``{last}`` in an argument is the previous command's last
        line of output (a task id)."""
        plan = [["-A", f"app_{app}", *args] for app, *args in commands]
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER, json.dumps(plan)],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, name: str, process: subprocess.Popen[str]) -> list[dict[str, Any]]:
        """Each command's ``args``, exit ``code`` and ``stdout``; every byte is kept."""
        out, err = process.communicate(timeout=DEADLINE * 2)
        self.outputs[f"{name} (stdout)"], self.outputs[f"{name} (stderr)"] = out, err
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert process.returncode == 0 and results, (out, err)
        return results


@pytest.fixture(scope="module")
def project(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    made = Project(tmp_path_factory.mktemp(f"secrets-{scenario.name}"), scenario)
    log = made.directory / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            made.command("good", "worker", "-l", "debug", "-P", "threads", "-c", "2",
                         "-n", f"secrets-{scenario.name}@test"),
            cwd=made.directory, env=made.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + DEADLINE
        while " ready." not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield made
    finally:
        worker.terminate()
        try:
            worker.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        # Its shutdown is output too.
        final = log.read_text(errors="replace").splitlines()
        assert [line for line in final if any(s in line for s in secrets(scenario))] == []


@pytest.mark.timeout(150)
def test_no_password_in_any_output(project: Project, scenario: Scenario) -> None:
    node = f"secrets-{scenario.name}@test"
    inspect = ("-d", node, "-t", "10")
    # One interpreter runs the commands of the good app, then the errors: a closed port
    # (sending), a wrong password, a vhost that does not exist; a worker starts on the closed
    # port beside it.
    errors = [("port", "call", "secrets.add")]
    errors += [(wrong, "status", "-t", "1") for wrong in scenario.wrong]
    commands = project.start(
        ("good", "call", "secrets.add", "--args", "[2, 3]"),
        ("good", "result", "{last}"),
        ("good", "report"),
        ("good", "inspect", "conf", *inspect, "--json"),
        ("good", "inspect", "stats", *inspect, "--json"),
        ("good", "inspect", "report", *inspect),
        ("good", "status", "-t", "1"),
        *errors,
    )
    worker = project.start(("port", "worker", "-l", "debug", "-P", "solo"))
    results = project.finish("commands", commands)
    call, result, report, conf, _stats, _report, status = results[:7]
    assert result["stdout"].strip() == "5"
    assert ":**@" in report["stdout"]  # the URLs are there, masked
    assert '"broker_url"' in conf["stdout"] and ":********@" in conf["stdout"]
    assert node in status["stdout"]
    for failed in results[7:] + project.finish("worker", worker):
        assert failed["code"] != 0, failed
    assert "Error" in project.outputs["worker (stderr)"]
    project.outputs["worker"] = (project.directory / "worker.log").read_text(errors="replace")
    assert f"secrets.add[{call['stdout'].strip()}] succeeded" in project.outputs["worker"]
    leaks = {
        name: [line for line in output.splitlines() if any(s in line for s in secrets(scenario))]
        for name, output in project.outputs.items()
    }
    assert {name: lines for name, lines in leaks.items() if lines} == {}
