"""Dead-letter queue: final failures and rejects land in '<queue>.dead'; list, replay, purge."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.app.task import Task
from celeriac.cli import dead as dead_cli
from celeriac.cli.base import CLIContext
from celeriac.exceptions import Reject
from celeriac.extras import deadletter
from celeriac.worker.worker import Worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


@pytest.fixture
def app(app: Celery) -> Celery:
    app.conf.task_dead_letter_queue = "{queue}.dead"
    return app


@pytest.fixture
def worker(app: Celery) -> Iterator[Worker]:
    w = Worker(
        app, pool="threads", concurrency=2, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=w.start, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)


def dead_count(app: Celery) -> int:
    with app.connection() as conn:
        return conn.size("celery.dead")


def test_final_failures_and_rejects_are_dead_lettered(app: Celery, worker: Worker) -> None:
    fixed = threading.Event()

    @app.task(bind=True, max_retries=1)
    def flaky(self: Task[Any, Any], n: int) -> int:
        if fixed.is_set():
            return n
        raise self.retry(exc=OSError("service down"), countdown=0)

    @app.task
    def refuse() -> None:
        raise Reject("bad input", requeue=False)

    failed = flaky.delay(5)
    with pytest.raises(OSError):
        failed.get(timeout=30)
    refuse.delay()
    wait_until(lambda: dead_count(app) == 2, "two dead letters")

    letters = {d.task_id: d for d in deadletter.list_dead(app, "celery.dead")}
    assert dead_count(app) == 2  # listing leaves them in place
    letter = letters[failed.id]
    assert (letter.task, letter.queue, letter.reason) == (flaky.name, "celery", "failed")
    assert "service down" in letter.exception and "OSError" in letter.traceback
    assert {d.reason for d in letters.values()} == {"failed", "rejected"}
    # The copy is in its queue before the original is acked: published with confirms.
    assert deadletter._connections[app][1].options["confirm_publish"] is True

    fixed.set()
    assert deadletter.replay(app, "celery.dead", [failed.id]) == 1
    wait_until(lambda: app.AsyncResult(failed.id).state == "SUCCESS", "the replayed task")
    assert app.AsyncResult(failed.id).get(timeout=5) == 5
    assert deadletter.purge(app, "celery.dead") == 1
    assert dead_count(app) == 0


def test_cli_and_switching_off(app: Celery, worker: Worker) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom.delay().get(timeout=30)
    wait_until(lambda: dead_count(app) == 1, "a dead letter")

    def cli(*args: str) -> str:
        obj = CLIContext()
        obj._app = app  # the loaded app, without -A
        result = CliRunner().invoke(dead_cli.dead, list(args), obj=obj)
        assert result.exit_code == 0, result.output
        return result.output

    assert "celery.dead: 1 message" in cli("list", "--traceback")
    assert "Purged 1 message from celery.dead." in cli("purge", "-f")
    app.conf.task_dead_letter_queue = None
    with pytest.raises(ValueError):
        boom.delay().get(timeout=30)
    assert dead_count(app) == 0
