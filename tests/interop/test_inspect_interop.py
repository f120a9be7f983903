"""Remote control between real Celery 5.7 and celeriac on Redis, both ways round:
``celery -A x inspect ...`` (the real command line) answered by a celeriac worker, and
celeriac's ``app.control.inspect()`` / ``celeriac inspect`` answered by a real Celery worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import APP, REPO, Endpoint, WorkerFactory

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30.0


def cli(package: str, endpoint: Endpoint, directory: Path, *args: str) -> Any:
    """``python -m <package> -A interop_app <args> --json``: the decoded JSON it printed."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "interop_app.py").write_text(APP.format(package=package))
    env = dict(os.environ, **endpoint.env())
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(REPO)])
    command = [sys.executable, "-m", package, "-A", "interop_app", *args, "--json"]
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_celery_inspect_is_answered_by_a_celeriac_worker(
    celery_client: Any, start_worker: WorkerFactory, endpoint: Endpoint, tmp_path: Path
) -> None:
    node = "insp-celeriac@interop"
    start_worker("celeriac", "-P", "threads", "-c", "2", "-n", node)
    # Celery's command line waits out its whole timeout even when the one node named has
    # answered (it sets no reply limit), so the timeout is the cost of each call.
    where = ("-d", node, "-t", "5")
    assert cli("celery", endpoint, tmp_path / "c", "inspect", "ping", *where) == {
        node: {"ok": "pong"}
    }
    # Real Celery's Python API for the rest (each command-line call costs a Celery start-up).
    inspect = celery_client.control.inspect(destination=[node], timeout=10, limit=1)
    stats = inspect.stats()[node]
    assert {"broker", "clock", "pid", "pool", "prefetch_count", "rusage", "total", "uptime"} <= set(
        stats
    )
    assert "interop.add" in inspect.registered()[node]
    release = tmp_path / "release"
    sleeper = celery_client.send_task("interop.block", (str(release),))
    _wait(lambda: (inspect.active() or {}).get(node), "the task active")
    (active,) = cli("celery", endpoint, tmp_path / "c", "inspect", "active", *where)[node]
    assert active["id"] == sleeper.id and active["name"] == "interop.block"
    assert inspect.active()[node][0]["id"] == sleeper.id
    release.touch()
    assert sleeper.get(timeout=TIMEOUT) == "released"


def test_celeriac_inspect_is_answered_by_a_celery_worker(
    celeriac_client: Any, start_worker: WorkerFactory, endpoint: Endpoint, tmp_path: Path
) -> None:
    node = "insp-celery@interop"
    start_worker("celery", "-P", "threads", "-c", "2", "-n", node)
    inspect = celeriac_client.control.inspect(destination=[node], timeout=10, limit=1)
    assert inspect.ping() == {node: {"ok": "pong"}}
    assert "interop.add" in inspect.registered()[node]
    assert inspect.stats()[node]["pool"]["max-concurrency"] == 2
    release = tmp_path / "release"
    sleeper = celeriac_client.send_task("interop.block", (str(release),))
    _wait(lambda: inspect.active()[node], "the task active")
    assert inspect.active()[node][0]["id"] == sleeper.id
    replies = cli("celeriac", endpoint, tmp_path / "r", "inspect", "active", "-d", node, "-t", "10")
    assert replies[node][0]["id"] == sleeper.id
    release.touch()
    assert sleeper.get(timeout=TIMEOUT) == "released"
