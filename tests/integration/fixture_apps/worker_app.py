"""Tasks for the worker integration tests; files live in $WORKER_TEST_DIR.

Extra settings come as JSON in $WORKER_TEST_CONF (for example ``{"task_acks_late": true}``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from celeriac import Celery

DIR = Path(os.environ["WORKER_TEST_DIR"])

app = Celery(
    "worker_app",
    broker=f"sqlite:///{DIR}/broker.sqlite",
    backend=f"db+sqlite:///{DIR}/results.sqlite",
)
app.conf.update(json.loads(os.environ.get("WORKER_TEST_CONF") or "{}"))


@app.task(name="tasks.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tasks.boom")
def boom(message: str) -> None:
    raise ValueError(message)


@app.task(name="tasks.block", track_started=True)
def block(release: str, limit: float = 60.0) -> str:
    """Run until the file ``release`` exists: the test decides when running tasks finish."""
    deadline = time.monotonic() + limit
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.01)
    return "released"


@app.task(name="tasks.until", bind=True, track_started=True)
def until(self: Any, release: str, done: str) -> str:
    """Run until the file ``release`` exists, then append this task's id to the file
    ``done`` (a line per completed run: a task cut short and run again appears once)."""
    deadline = time.monotonic() + 60.0
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.01)
    with open(done, "a") as handle:
        handle.write(f"{self.request.id}\n")
    return "done"


@app.task(name="tasks.once_slow", track_started=True, acks_late=True, reject_on_worker_lost=True)
def once_slow(marker: str) -> str:
    """Hang on the first delivery (the test kills it); return at once when redelivered."""
    if os.path.exists(marker):
        return "second run"
    Path(marker).write_text("started")
    time.sleep(60)
    return "first run"


@app.task(name="tasks.body_once")
def body_once(values: list[Any]) -> list[Any]:
    """A chord body that records each run in $WORKER_TEST_DIR/body-runs."""
    with (DIR / "body-runs").open("a") as runs:
        runs.write(json.dumps(values) + "\n")
    return values


@app.task(name="tasks.hang", track_started=True)
def hang() -> None:
    time.sleep(60)


@app.task(name="tasks.die_once")
def die_once(marker: str) -> str:
    """Kill its own process on the first run (the file ``marker`` remembers it)."""
    if os.path.exists(marker):
        return "survived"
    Path(marker).write_text("died")
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@app.task(name="tasks.stamp", bind=True)
def stamp(self: Any) -> tuple[float, int, str | None]:
    """When it started (Unix time), in which process, and the rate limit that process knows."""
    return time.time(), os.getpid(), self.rate_limit


@app.task(name="tasks.logged", bind=True)
def logged(self: Any, log: str, hold: str | None = None) -> str:
    """Append ``start <id>`` to the file ``log``, wait for the file ``hold`` (if given),
    then append ``end <id>``: the log tells which tasks ran, finished, and ran twice."""
    task_id = self.request.id
    with open(log, "a") as handle:
        handle.write(f"start {task_id} {os.getpid()}\n")
    deadline = time.monotonic() + 60.0
    while hold is not None and not os.path.exists(hold):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{hold} never appeared")
        time.sleep(0.01)
    with open(log, "a") as handle:
        handle.write(f"end {task_id} {os.getpid()}\n")
    return "done"
