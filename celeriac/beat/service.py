"""Beat as a service: the scheduler's loop until stopped, in the foreground (``celeriac
beat``) or in a thread of a worker (``worker -B``)."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from celeriac.beat.scheduler import Scheduler
from celeriac.beat.state import StateFile

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.beat")


class Beat:
    """``Beat(app, schedule_filename=..., max_interval=...).run()``; ``stop()`` from any
    thread or signal handler."""

    def __init__(
        self,
        app: Celery,
        *,
        schedule_filename: str | os.PathLike[str] | None = None,
        max_interval: float | None = None,
    ) -> None:
        self.app = app
        self.schedule_filename = os.fspath(schedule_filename or app.conf.beat_schedule_filename)
        self.max_interval = max_interval
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.scheduler: Scheduler | None = None

    def run(self) -> None:
        """Open the state file, read the schedule, and tick until :meth:`stop`."""
        self.app.import_default_modules()
        state = StateFile(self.schedule_filename, _zone_name(self.app))
        try:
            scheduler = Scheduler(self.app, state, max_interval=self.max_interval)
            scheduler.setup()
            self.scheduler = scheduler
            logger.info(
                "beat: Starting... (%d entries, state in %s, max interval %.1fs)",
                len(scheduler.entries),
                self.schedule_filename,
                scheduler.max_interval,
            )
            self.ready.set()
            while not self._stopped.is_set():
                self._stopped.wait(scheduler.tick())
        finally:
            state.close()
            self.ready.set()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread (``worker -B``); errors are logged, not raised."""

        def target() -> None:
            try:
                self.run()
            except Exception as exc:
                logger.critical("beat stopped: %s", exc, exc_info=True)

        self._thread = threading.Thread(target=target, name="celeriac-beat", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def _zone_name(app: Celery) -> str:
    return str(app.conf.timezone or "UTC")


__all__ = ["Beat"]
