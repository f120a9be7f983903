"""``celeriac status``, ``inspect``, ``control`` and ``events --dump`` against real workers
(the embedded broker; Redis and RabbitMQ with a prefork worker): aligned tables for people,
``--json`` for programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from celeriac import Celery, states
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import FIXTURE_APPS, REPO, WorkerFactory, wait_state, wait_until
from tests.integration.test_events_cli import Monitor

NODE = "cli@test"


def celeriac(tmp_path: Path, broker: BrokerEnv, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(FIXTURE_APPS)])
    env["WORKER_TEST_DIR"] = str(tmp_path)
    env["WORKER_TEST_CONF"] = json.dumps(broker.settings)
    command = [sys.executable, "-m", "celeriac", "-A", "worker_app", *args]
    if "-t" not in args:  # one node: the answer ends the wait
        command += ["-d", NODE, "-t", "20"]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_status_inspect_and_control_from_the_command_line(
    start_worker: WorkerFactory, tmp_path: Path, broker: BrokerEnv
) -> None:
    start_worker("-P", "threads", "-c", "2", "-n", NODE)
    status = celeriac(tmp_path, broker, "status", "-t", "2")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["NODE", "STATUS"]
    assert lines[1].split() == [NODE, "OK"]
    assert lines[3] == "1 node online."
    # The files the worker answered on, as absolute paths (the wrong-directory guard).
    assert lines[-2:] == [
        f"broker file: {tmp_path / 'broker.sqlite'}",
        f"results file: {tmp_path / 'results.sqlite'}",
    ]
    alone = celeriac(tmp_path, broker, "status", "-d", "nobody@nowhere", "-t", "0.3")
    assert alone.returncode == 1
    assert f"No nodes replied within time constraint on {tmp_path / 'broker.sqlite'}" in (
        alone.stderr
    )
    assert "another directory" in alone.stderr
    as_json = celeriac(tmp_path, broker, "status", "--json")
    assert json.loads(as_json.stdout) == {NODE: {"ok": "pong"}}

    stats = celeriac(tmp_path, broker, "inspect", "stats")
    assert stats.returncode == 0, stats.stderr
    header, row = stats.stdout.splitlines()
    assert header.split() == ["NODE", "PID", "POOL", "CONCURRENCY", "PROCESSED", "UPTIME", "BROKER"]
    assert header.index("POOL") == row.index("threads")  # aligned columns
    stats_json = json.loads(celeriac(tmp_path, broker, "inspect", "stats", "-j").stdout)
    assert stats_json[NODE]["pool"]["max-concurrency"] == 2

    registered = celeriac(tmp_path, broker, "inspect", "registered").stdout.splitlines()
    assert [NODE, "tasks.add"] in [line.split() for line in registered]

    grown = celeriac(tmp_path, broker, "control", "add_consumer", "extraq")
    assert grown.returncode == 0, grown.stderr
    assert grown.stdout.splitlines()[1].split() == [NODE, "add", "consumer", "extraq"]
    queues = celeriac(tmp_path, broker, "inspect", "active_queues", "--json")
    assert [q["name"] for q in json.loads(queues.stdout)[NODE]] == ["celery", "extraq"]
    limited = celeriac(tmp_path, broker, "control", "rate_limit", "tasks.add", "10/m", "--json")
    assert json.loads(limited.stdout) == {NODE: {"ok": "new rate limit set successfully"}}

    nobody = celeriac(tmp_path, broker, "inspect", "ping", "-d", "nobody@nowhere", "-t", "0.3")
    assert nobody.returncode == 1
    assert "No nodes replied within time constraint" in nobody.stderr
    bad = celeriac(tmp_path, broker, "control", "rate_limit", "tasks.add")
    assert bad.returncode == 2 and "needs a task name and a rate limit" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)
def test_the_command_line_against_a_prefork_worker_on_redis_and_rabbitmq(
    start_worker: WorkerFactory, tmp_path: Path, broker: BrokerEnv, client: Celery
) -> None:
    """status, inspect (tables and --json), control terminate / pool_grow / shutdown and
    ``events --dump``, against a prefork worker whose children consume for themselves."""
    dump = Monitor(tmp_path, broker.settings, "--dump")
    try:
        wait_until(lambda: "Starting capture" in dump.output(), "the dump to start")
        worker = start_worker("-P", "prefork", "-c", "2", "-E", "-n", NODE)
        status = celeriac(tmp_path, broker, "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[1].split() == [NODE, "OK"]
        assert json.loads(celeriac(tmp_path, broker, "status", "--json").stdout) == {
            NODE: {"ok": "pong"}
        }

        done = client.send_task("tasks.add", (20, 22))
        assert done.get(timeout=30) == 42
        wait_until(lambda: f"task succeeded: tasks.add({done.id})" in dump.output(), "dumped")
        assert f"{NODE} [" in dump.output()  # the worker's own events

        blocked = client.send_task("tasks.block", (str(tmp_path / "never"),))
        wait_state(client, blocked.id, states.STARTED)
        table = celeriac(tmp_path, broker, "inspect", "active")
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:3] == ["NODE", "ID", "NAME"]
        assert row.split()[:3] == [NODE, blocked.id, "tasks.block"]
        (active,) = json.loads(celeriac(tmp_path, broker, "inspect", "active", "-j").stdout)[NODE]
        stats = json.loads(celeriac(tmp_path, broker, "inspect", "stats", "--json").stdout)[NODE]
        assert active["id"] == blocked.id and active["worker_pid"] in stats["pool"]["processes"]
        query = celeriac(tmp_path, broker, "inspect", "query_task", blocked.id, "--json")
        assert json.loads(query.stdout)[NODE][blocked.id][0] == "active"

        killed = celeriac(tmp_path, broker, "control", "terminate", "SIGKILL", blocked.id)
        assert killed.returncode == 0, killed.stderr
        assert killed.stdout.splitlines()[1].split() == [NODE, "terminate:", blocked.id]
        assert wait_state(client, blocked.id, states.REVOKED) == states.REVOKED
        grown = celeriac(tmp_path, broker, "control", "pool_grow", "1", "--json")
        assert json.loads(grown.stdout) == {NODE: {"ok": "pool will grow"}}
        wait_until(
            lambda: len(client.control.inspect(timeout=3).stats()[NODE]["pool"]["processes"]) == 3,
            "a third child",
        )
        stopped = celeriac(tmp_path, broker, "control", "shutdown")
        assert stopped.returncode == 0, stopped.stderr
        assert worker.wait_exit() == 0
        wait_until(
            lambda: any(
                line.startswith(f"{NODE} [") and "] shutdown" in line
                for line in dump.output().splitlines()
            ),
            "worker-offline in the dump",
        )
    finally:
        dump.stop()
