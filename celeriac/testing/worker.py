"""A real worker in a thread of the test process: ``with start_worker(app) as worker: ...``.

The worker is :class:`celeriac.worker.worker.Worker` itself (consumer, pool, acks, retries,
remote control), with signal handlers left alone; tests talk to it through the broker as any
client would, so serialization and acknowledgement are the real ones, not eager mode.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from celeriac.utils.log import TASK_LOGGER_NAME
from celeriac.worker.worker import Worker

if TYPE_CHECKING:
    from celeriac.app.base import Celery
#: Seconds to wait for the worker to be ready, and to stop.
WORKER_TIMEOUT = 30.0


@contextlib.contextmanager
def start_worker(
    app: Celery,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    loglevel: str | int = "WARNING",
    perform_ping_check: bool = False,
    shutdown_timeout: float = WORKER_TIMEOUT,
    **kwargs: Any,
) -> Iterator[Worker]:
    """Run a worker for ``app`` in a daemon thread until the block ends (warm shutdown).

    The worker sets up logging as a worker does (levels, handlers, the task logger's
    propagation); that is put back when the block ends, so what runs after it (the next
    tests) logs as before."""
    with _logging_kept():
        yield from _running(
            app, pool, concurrency, loglevel, perform_ping_check, shutdown_timeout, kwargs
        )


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Restore the level, handlers and propagation of the loggers a worker configures."""
    names = ("", "celeriac", TASK_LOGGER_NAME)
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate) for lg in map(logging.getLogger, names)
    ]
    try:
        yield
    finally:
        for logger, level, handlers, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def _running(
    app: Celery,
    pool: str,
    concurrency: int,
    loglevel: str | int,
    perform_ping_check: bool,
    shutdown_timeout: float,
    kwargs: dict[str, Any],
) -> Iterator[Worker]:
    worker = Worker(
        app,
        pool=pool,
        concurrency=concurrency,
        loglevel=loglevel,
        without_banner=True,
        install_signal_handlers=False,
        **kwargs,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # surfaced in the test thread below
            failure.append(exc)
            worker.ready.set()

    thread = threading.Thread(target=run, name=f"celeriac-test-worker-{pool}", daemon=True)
    thread.start()
    if not worker.ready.wait(WORKER_TIMEOUT) or failure:
        worker.stop(warm=False)
        raise RuntimeError(f"the test worker did not start: {failure[:1]!r}")
    if perform_ping_check:
        answers = app.control.ping(destination=[worker.hostname], timeout=5.0)
        if not answers:
            raise RuntimeError("the test worker did not answer ping")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(shutdown_timeout)
        if thread.is_alive():
            worker.stop(warm=False)
            thread.join(shutdown_timeout)


__all__ = ["WORKER_TIMEOUT", "start_worker"]
