"""Beat as a service: the scheduler's loop until stopped, in the foreground (``celeriac
beat``) or in a thread of a worker (``worker -B``).

With ``beat_lease`` (the default) the loop first takes the lease (:mod:`celeriac.beat.lease`):
a beat that finds it held is a standby until the holder goes away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING

from celeriac.beat.lease_stores import lease_for
from celeriac.beat.scheduler import Scheduler
from celeriac.beat.state import StateFile
from celeriac.beat.store_backends import store_for

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.beat.lease import BeatLease

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
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ready = threading.Event()
        self.leading = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.scheduler: Scheduler | None = None

    def run(self) -> None:
        """Take the lease (or wait for it), then tick until :meth:`stop`."""
        self.app.import_default_modules()
        conf = self.app.conf
        ttl = float(conf.beat_lease_ttl)
        lease = lease_for(self.app) if conf.beat_lease else None
        if conf.beat_lease and lease is None:
            logger.warning(
                "beat: this broker keeps no beat lease (%s): run exactly one beat, or a second "
                "one sends every task twice",
                self.app.broker_url_display(),
            )
        try:
            while not self._stopped.is_set():
                if lease is not None and not self._wait_for(lease, ttl):
                    break
                self._lead(lease, ttl)
        finally:
            if lease is not None:
                lease.release(self.owner)
                lease.close()
            self.ready.set()

    def _wait_for(self, lease: BeatLease, ttl: float) -> bool:
        """Standby until the lease is ours (True) or beat is stopped (False)."""
        said = False
        while not self._stopped.is_set():
            if lease.acquire(self.owner, ttl):
                logger.info("beat: holding the lease %r (%s)", lease.name, self.owner)
                return True
            if not said:
                logger.warning(
                    "beat: standby: another beat (%s) holds the lease %r; taking over if it "
                    "stops renewing it for %.1fs",
                    lease.holder(),
                    lease.name,
                    ttl,
                )
                said = True
            self.ready.set()
            self._stopped.wait(ttl / 3)
        return False

    def _lead(self, lease: BeatLease | None, ttl: float) -> None:
        """Open the schedule store (else the state file) and tick while the lease stays ours."""
        store = store_for(self.app)
        state = StateFile(self.schedule_filename, _zone_name(self.app)) if store is None else None
        try:
            scheduler = Scheduler(self.app, state, max_interval=self.max_interval, store=store)
            scheduler.setup()
            self.scheduler = scheduler
            logger.info(
                "beat: Starting... (%d entries, state in %s, max interval %.1fs)",
                len(scheduler.entries),
                self.schedule_filename if store is None else f"the schedule store {store!r}",
                scheduler.max_interval,
            )
            self.leading.set()
            self.ready.set()
            renewed = time.monotonic()
            while not self._stopped.is_set():
                if lease is not None:
                    # Renewed before every tick: a send happens only under a live lease.
                    if not lease.acquire(self.owner, ttl):
                        logger.warning("beat: lost the lease %r; standby again", lease.name)
                        return
                    if time.monotonic() - renewed > ttl:
                        logger.warning("beat: the lease was late renewing (%s)", self.owner)
                    renewed = time.monotonic()
                wait = scheduler.tick()
                self._stopped.wait(wait if lease is None else min(wait, ttl / 3))
        finally:
            self.leading.clear()
            if state is not None:
                state.close()
            if store is not None:
                store.close()

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
    """The zone the runs were recorded in (a change forgets them, as in Celery)."""
    conf = app.conf
    return str(conf.timezone or ("UTC" if conf.enable_utc else "local"))


__all__ = ["Beat"]
