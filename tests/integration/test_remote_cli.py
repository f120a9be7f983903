"""``celeriac status``, ``inspect`` and ``control`` against a real worker (embedded broker):
aligned tables for people, ``--json`` for programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import FIXTURE_APPS, REPO, WorkerFactory

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
