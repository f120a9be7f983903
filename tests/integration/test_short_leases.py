"""A lease shorter than the consumer's old one-second renewal floor is renewed in time: a
long ``acks_late`` task under a 0.6 s ``visibility_timeout`` runs once, though a second
worker on the same embedded broker would take its message the moment the lease ran out."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.testing import start_worker

pytestmark = pytest.mark.timeout(60)


def test_a_short_lease_is_renewed_while_the_task_runs(tmp_path: Path) -> None:
    runs: list[str] = []
    finished = threading.Event()

    def make_app(name: str) -> Celery:
        app = Celery(
            name,
            broker=f"sqlite:///{tmp_path / 'broker.db'}",
            set_as_current=False,
        )
        app.conf.broker_transport_options = {"visibility_timeout": 0.6}
        app.conf.task_acks_late = True

        @app.task(name="leases.long")
        def long() -> str:
            runs.append(name)
            time.sleep(2.5)  # the task's own work, longer than four leases
            finished.set()
            return name

        return app

    first, second = make_app("first"), make_app("second")
    with start_worker(first, pool="threads", concurrency=1):
        first.tasks["leases.long"].delay()
        deadline = time.monotonic() + 10
        while not runs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs == ["first"]
        with start_worker(second, pool="threads", concurrency=1):
            assert finished.wait(20)
            # Past two more leases: the second worker would have had it by now.
            time.sleep(1.5)
    first.close()
    second.close()
    assert runs == ["first"]
