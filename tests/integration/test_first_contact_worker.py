"""A worker meeting a Celery client's canvas messages, and what celeriac lacks: -E,
and a project run as ``python proj.py worker`` through ``app.worker_main()``."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.protocol.message import Message
from celeriac.worker.worker import Worker
from tests.integration.conftest import REPO, wait_until

# The embed of task_v2_chain_first.json (``chain(add.s(2, 2), add.s(4), add.s(8))`` sent by
# Celery 5.7): the rest of the chain travels in the first message, in reverse order.
CHAIN_EMBED: dict[str, Any] = {
    "callbacks": None,
    "errbacks": None,
    "chain": [
        {
            "task": "tasks.add",
            "args": [8],
            "kwargs": {},
            "options": {
                "task_id": "3faf178c-cd97-4087-8313-388e6c482b06",
                "reply_to": "e6f4a335-bad1-3893-a0aa-1b9e96708ac2",
            },
            "subtask_type": None,
            "immutable": False,
        },
        {
            "task": "tasks.add",
            "args": [4],
            "kwargs": {},
            "options": {
                "task_id": "1e49e51c-11e9-44d9-822c-c9f66fdf9fbe",
                "reply_to": "e6f4a335-bad1-3893-a0aa-1b9e96708ac2",
            },
            "subtask_type": None,
            "immutable": False,
        },
    ],
    "chord": None,
}
# As task_v2_link_errback.json carries it: ``apply_async(link_error=...)``.
ERRBACK_EMBED: dict[str, Any] = {
    "callbacks": None,
    "errbacks": [
        {
            "task": "tasks.on_error",
            "args": [],
            "kwargs": {},
            "options": {},
            "subtask_type": None,
            "immutable": False,
        }
    ],
    "chain": None,
    "chord": None,
}


def celery_message(task_id: str, name: str, args: list[Any], embed: dict[str, Any]) -> Message:
    """A protocol 2 message with the headers and properties a Celery 5.7 client sends."""
    headers = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(tuple(args)),
        "kwargsrepr": "{}",
        "origin": "gen5166@vm",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    return Message(
        body=json.dumps([args, {}, embed]).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties={
            "correlation_id": task_id,
            "reply_to": "e6f4a335-bad1-3893-a0aa-1b9e96708ac2",
            "delivery_mode": 2,
            "priority": 0,
        },
    )


@pytest.fixture
def start_worker(memory_app: Celery) -> Iterator[Callable[[], Worker]]:
    """Starts an in-thread solo worker (in the test, so caplog sees its start-up lines)."""

    @memory_app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @memory_app.task(name="tasks.fail")
    def fail() -> None:
        raise ValueError("expected")

    memory_app.conf.beat_schedule = {"every-minute": {"task": "tasks.add", "schedule": 60.0}}
    memory_app.conf.worker_send_task_events = True
    instance = Worker(memory_app, pool="solo", install_signal_handlers=False, without_banner=True)
    thread = threading.Thread(target=instance.start, daemon=True)

    def start() -> Worker:
        thread.start()
        wait_until(instance.ready.is_set, "the worker to be ready")
        return instance

    yield start
    instance.stop()
    if thread.is_alive():
        thread.join(30)
    assert not thread.is_alive()


def _errors(caplog: pytest.LogCaptureFixture, task_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and task_id in r.getMessage()
    ]


def test_a_celery_clients_chain_and_errback_messages_are_carried_on(
    memory_app: Celery, start_worker: Callable[[], Worker]
) -> None:
    """Messages exactly as Celery 5.7 sends them: the worker publishes the chain's next steps
    and sends the errback (one argument: old style, ``(task_id,)``) to the failed task."""
    errbacks: list[str] = []

    @memory_app.task(name="tasks.on_error")
    def on_error(task_id: str) -> None:
        errbacks.append(task_id)

    start_worker()
    with memory_app.connection() as conn:
        chain = celery_message("chain-1", "tasks.add", [2, 2], CHAIN_EMBED)
        conn.publish(chain, routing_key="celery")
        errback = celery_message("errback-1", "tasks.fail", [], ERRBACK_EMBED)
        conn.publish(errback, routing_key="celery")
        last = memory_app.AsyncResult("3faf178c-cd97-4087-8313-388e6c482b06")
        assert last.get(timeout=20) == 16  # (2 + 2) + 4 + 8
        assert memory_app.AsyncResult("chain-1").get(timeout=20) == 4
        wait_until(lambda: errbacks == ["errback-1"], "the errback to run")
        assert memory_app.AsyncResult("errback-1").state == "FAILURE"


def test_worker_warns_at_start_about_neither_beat_schedule_nor_events(
    start_worker: Callable[[], Worker], caplog: pytest.LogCaptureFixture
) -> None:
    start_worker()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert not any("beat_schedule" in w for w in warnings)  # beat runs it, not the worker
    assert not any("worker_send_task_events" in w for w in warnings)  # events are there


def test_worker_main_runs_a_project_as_a_script(tmp_path: Path) -> None:
    """``python proj.py worker -P solo`` with ``app.worker_main()`` at the end of proj.py."""
    broker, results = f"sqlite:///{tmp_path}/broker.sqlite", f"db+sqlite:///{tmp_path}/r.sqlite"
    script = tmp_path / "proj.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from celeriac import Celery

            app = Celery("proj", broker={broker!r}, backend={results!r})

            @app.task(name="tasks.add")
            def add(x, y):
                return x + y

            if __name__ == "__main__":
                raise SystemExit(app.worker_main())
            """
        )
    )
    client = Celery("client", broker=broker, backend=results)
    client.backend.get_state("warm-up")  # create the SQLite files before the worker opens them
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(script), "worker", "-P", "solo", "-l", "INFO"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert client.send_task("tasks.add", (20, 22)).get(timeout=30) == 42
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()
    assert "tasks.add" in log.read_text()  # the banner's task list: the script's own app
