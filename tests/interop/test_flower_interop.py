"""Flower 2.2 (a real ``celery flower`` process, headless, no database) watching and driving a
celeriac worker on Redis: the worker and its counters show on ``/api/workers`` and the
dashboard's JSON, celeriac-sent tasks show on ``/api/tasks`` and ``/api/task/info`` with their
state, arguments and result, and Flower's control buttons reach the worker.

One Flower process and one celeriac worker serve the whole module; the tests run in order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.interop.conftest import APP, REPO, Endpoint, WorkerProcess

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30.0
NODE = "flower-celeriac@interop"


def _wait(condition: Callable[[], Any], what: str, last: Callable[[], Any] = str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def worker(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    directory = tmp_path_factory.mktemp("celeriac-worker")
    made = WorkerProcess(
        "celeriac", endpoint, directory, "-P", "threads", "-c", "2", "-E", "-n", NODE
    )
    made.wait_ready()
    yield made
    made.stop()


@pytest.fixture(scope="module")
def flower(
    endpoint: Endpoint, worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """``celery -A interop_app flower`` on a free local port; an HTTP client for it."""
    directory = tmp_path_factory.mktemp("flower")
    (directory / "interop_app.py").write_text(APP.format(package="celery"))
    port = _free_port()
    env = dict(os.environ, **endpoint.env(), FLOWER_UNAUTHENTICATED_API="true")
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(REPO)])
    log = directory / "flower.log"
    command = [
        *(sys.executable, "-m", "celery", "-A", "interop_app", "flower"),
        *(f"--port={port}", "--address=127.0.0.1", "--persistent=False"),
        "--inspect_timeout=5000",  # milliseconds; a loaded machine answers slowly
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)

    def up() -> bool:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            return client.get("/healthcheck").status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait(up, "Flower to listen", lambda: log.read_text(errors="replace"))
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workers(flower: httpx.Client) -> dict[str, Any]:
    reply = flower.get("/api/workers", params={"refresh": 1})
    assert reply.status_code == 200, reply.text
    workers: dict[str, Any] = reply.json()
    return workers


def test_flower_lists_the_celeriac_worker(flower: httpx.Client, endpoint: Endpoint) -> None:
    info = _wait(
        lambda: (w := _workers(flower).get(NODE)) and {"stats", "registered"} <= set(w) and w,
        "the celeriac worker on /api/workers",
        lambda: _workers(flower),
    )
    stats = info["stats"]
    assert stats["pool"]["max-concurrency"] == 2
    assert stats["broker"]["transport"] == "redis" and stats["broker"]["ssl"] is False
    assert "interop.add" in info["registered"]
    queue = endpoint.conf["task_default_queue"]
    assert [q["name"] for q in info["active_queues"]] == [queue]
    assert flower.get("/api/workers", params={"status": 1}).json() == {NODE: True}
    page = flower.get(f"/worker/{NODE}")  # the worker page renders celeriac's stats
    assert page.status_code == 200 and NODE in page.text


def test_flower_follows_celeriac_tasks(flower: httpx.Client, celeriac_client: Any) -> None:
    add = celeriac_client.send_task("interop.add", (2, 3))
    echo = celeriac_client.send_task("interop.echo", (1, "a"), {"k": [1, 2]})
    fail = celeriac_client.send_task("interop.fail", ("boom",))
    assert add.get(timeout=TIMEOUT) == 5
    assert echo.get(timeout=TIMEOUT) == {"args": [1, "a"], "kwargs": {"k": [1, 2]}}
    with pytest.raises(ValueError):
        fail.get(timeout=TIMEOUT)

    def tasks() -> dict[str, Any]:
        listed: dict[str, Any] = flower.get("/api/tasks").json()
        return listed

    def settled() -> bool:
        listed = tasks()
        ids = (add.id, echo.id, fail.id)
        return all(listed.get(i, {}).get("state") in ("SUCCESS", "FAILURE") for i in ids)

    _wait(settled, "the three tasks settled on /api/tasks", tasks)
    listed = tasks()
    assert listed[add.id]["state"] == "SUCCESS" and listed[add.id]["result"] == "5"
    assert listed[add.id]["args"] == "(2, 3)" and listed[add.id]["name"] == "interop.add"
    assert listed[add.id]["worker"] == NODE and listed[add.id]["runtime"] is not None
    assert listed[echo.id]["kwargs"] == "{'k': [1, 2]}"
    failed = listed[fail.id]
    assert failed["state"] == "FAILURE" and failed["exception"] == "ValueError('boom', 42)"
    assert "raise ValueError(message, 42)" in failed["traceback"]

    info = flower.get(f"/api/task/info/{add.id}").json()
    assert info["uuid"] == add.id and info["state"] == "SUCCESS" and info["result"] == "5"
    assert info["received"] <= info["started"] <= info["succeeded"]
    assert flower.get("/api/tasks", params={"state": "FAILURE"}).json().keys() == {fail.id}

    def dashboard() -> dict[str, Any]:
        rows = flower.get("/workers", params={"json": 1}).json()["data"]
        return {row["hostname"]: row for row in rows}

    row = _wait(  # heartbeats carry the counters the dashboard shows
        lambda: (r := dashboard().get(NODE)) and r.get("processed", 0) >= 3 and r,
        "processed >= 3 on the dashboard",
        dashboard,
    )
    assert row["status"] is True and row["active"] == 0 and row["sw_ident"] == "py-celeriac"
    assert row["task-succeeded"] == 2 and row["task-failed"] == 1


def test_flower_controls_reach_the_celeriac_worker(flower: httpx.Client) -> None:
    grown = flower.post(f"/api/worker/pool/grow/{NODE}", params={"n": 1})
    assert grown.status_code == 200, grown.text
    _wait(
        lambda: _workers(flower)[NODE]["stats"]["pool"]["max-concurrency"] == 3,
        "the pool grown to 3",
        lambda: _workers(flower)[NODE]["stats"]["pool"],
    )
    limited = flower.post(
        "/api/task/rate-limit/interop.add", data={"ratelimit": "100/m", "workername": NODE}
    )
    assert limited.json() == {"message": "new rate limit set successfully"}
    timed = flower.post(
        "/api/task/timeout/interop.add", data={"soft": 10, "hard": 20, "workername": NODE}
    )
    assert timed.json() == {"message": "time limits set successfully"}
    # the "restart pool" button: a clear refusal, not "No such command"
    restart = flower.post(f"/api/worker/pool/restart/{NODE}")
    assert restart.status_code == 403 and "Pool restarts not enabled" in restart.text
    scaled = flower.post(f"/api/worker/pool/autoscale/{NODE}", data={"min": 1, "max": 3})
    assert scaled.status_code == 403 and "Autoscale not enabled" in scaled.text
