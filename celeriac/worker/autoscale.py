"""``worker --autoscale=max,min``: grow the pool with load, shrink it when idle (Celery's rules).

Every second: with ``qty`` tasks the worker holds (received and running; where prefork
children consume for themselves: the tasks they run plus the messages waiting in the
worker's queues), the pool grows to ``min(qty, max)`` when it is smaller, and shrinks to
``max(qty, min)`` when it is larger, but only once ``keepalive`` seconds (Celery's
``AUTOSCALE_KEEPALIVE``, default 30) have passed since it last grew or last saw work. A pool
shrinks by its idle slots first: a busy process or thread finishes its task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from celeriac.worker.pools.base import BasePool

logger = logging.getLogger("celeriac.worker.autoscale")

#: Seconds without new work before the pool shrinks (Celery's environment variable).
KEEPALIVE = float(os.environ.get("AUTOSCALE_KEEPALIVE", 30))
#: How often the load is looked at.
TICK = 1.0


def parse_autoscale(value: str) -> tuple[int, int]:
    """``"10,3"`` -> (10, 3); ``"10"`` -> (10, 0); Celery sorts the pair (max first)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--autoscale: expected MAX[,MIN], got {value!r}")
    numbers = sorted((int(p) for p in parts), reverse=True)
    high, low = (numbers[0], numbers[1]) if len(numbers) == 2 else (numbers[0], 0)
    if high < 1:
        raise ValueError(f"--autoscale: the maximum must be at least 1, got {value!r}")
    return high, low


class Autoscaler:
    """Scales ``pool`` between ``min_concurrency`` and ``max_concurrency`` by ``load()``."""

    def __init__(
        self,
        pool: BasePool,
        max_concurrency: int,
        min_concurrency: int,
        load: Callable[[], int],
        *,
        keepalive: float = KEEPALIVE,
    ) -> None:
        if keepalive <= 0:
            raise ValueError("autoscale keepalive must be positive: cannot scale down too fast")
        self.pool = pool
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.load = load
        self.keepalive = keepalive
        self.mutex = threading.Lock()
        self._last_active: float | None = None  # last grown, or last saw work
        self._qty = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def processes(self) -> int:
        return self.pool.size

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.maybe_scale()
            except Exception:  # a broker hiccup reading the load: try again next tick
                logger.exception("Autoscaler: scaling failed")

    # -- Celery's rules -------------------------------------------------------------------
    def maybe_scale(self) -> bool:
        """Grow or shrink once toward the load; True if the pool size changed."""
        with self.mutex:
            qty = self._qty = max(0, int(self.load()))
            if qty:
                self._last_active = time.monotonic()
            procs = self.processes
            wanted = min(qty, self.max_concurrency)
            if wanted > procs:
                self._grow(wanted - procs)
                self._last_active = time.monotonic()
                return True
            wanted = max(qty, self.min_concurrency, 1)
            if wanted < procs and self._idle_long_enough():
                return self._shrink(procs - wanted)
            return False

    def _idle_long_enough(self) -> bool:
        last = self._last_active
        return last is not None and time.monotonic() - last > self.keepalive

    def update(self, max: int | None = None, min: int | None = None) -> tuple[int, int]:
        """The ``autoscale`` control command: new bounds, applied at once."""
        with self.mutex:
            if max is not None:
                if max < self.processes:
                    self._shrink(self.processes - max)
                self.max_concurrency = max
            if min is not None:
                if min > self.processes:
                    self._grow(min - self.processes)
                self.min_concurrency = min
            return self.max_concurrency, self.min_concurrency

    def _grow(self, n: int) -> None:
        logger.info("Scaling up %s processes.", n)
        self.pool.grow(n)

    def _shrink(self, n: int) -> bool:
        logger.info("Scaling down %s processes.", n)
        before = self.processes
        try:
            self.pool.shrink(n)
        except Exception as exc:
            logger.error("Autoscaler: scale_down: %r", exc, exc_info=True)
        return self.processes != before

    def info(self) -> dict[str, Any]:
        """Celery's ``stats()['autoscaler']``: max, min, current size, load."""
        return {
            "max": self.max_concurrency,
            "min": self.min_concurrency,
            "current": self.processes,
            "qty": self._qty,
        }


__all__ = ["KEEPALIVE", "TICK", "Autoscaler", "parse_autoscale"]
