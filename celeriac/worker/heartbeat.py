"""The worker's own events: ``worker-online`` at start, ``worker-heartbeat`` every ``freq``
seconds and ``worker-offline`` at shutdown, with Celery's fields (``freq``, ``active``,
``processed``, ``loadavg``, ``sw_ident``, ``sw_ver``, ``sw_sys``).

They are sent whether or not task events are on, as Celery's heartbeat is (monitors and
``celeriac status`` find workers by them); ``worker --without-heartbeat`` turns them off.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.events.event import HEARTBEAT_FREQUENCY
from celeriac.utils.version import __version__

if TYPE_CHECKING:
    from celeriac.events.node import NodeEvents

logger = logging.getLogger("celeriac.worker.heartbeat")

#: What a worker says it is: celeriac and its version (Celery's say ``py-celery`` and 5.7.0).
#: Neither Celery's event state nor Flower read these two beyond storing and showing them, so
#: an operator can tell the two kinds of worker apart in a mixed cluster.
SW_IDENT = "py-celeriac"
SW_VER = __version__


class Heartbeat:
    """A thread sending this worker's online / heartbeat / offline events."""

    def __init__(
        self,
        node: NodeEvents,
        *,
        active: Callable[[], int],
        processed: Callable[[], int],
        interval: float = HEARTBEAT_FREQUENCY,
    ) -> None:
        self.node = node
        self.interval = float(interval)
        self._active = active
        self._processed = processed
        self._stop = threading.Event()
        self._now = threading.Event()  # the heartbeat control command: send one now
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._send("worker-online")
        self._thread = threading.Thread(target=self._run, name="celeriac-heartbeat", daemon=True)
        self._thread.start()

    def beat_now(self) -> None:
        self._now.set()

    def stop(self) -> None:
        self._stop.set()
        self._now.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._send("worker-offline")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._now.wait(self.interval)
            self._now.clear()
            if not self._stop.is_set():
                self._send("worker-heartbeat")

    def _send(self, type: str) -> None:
        try:
            fields: dict[str, Any] = {
                "freq": self.interval,
                "active": self._active(),
                "processed": self._processed(),
                "loadavg": _loadavg(),
                "sw_ident": SW_IDENT,
                "sw_ver": SW_VER,
                "sw_sys": platform.system(),
            }
            dispatcher = self.node.dispatcher()
            dispatcher.send(type, **fields)
            dispatcher.flush()  # task events buffered by this process go along
        except Exception as exc:  # a heartbeat must never take the worker down
            logger.warning("Could not send %s: %r", type, exc)


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


__all__ = ["SW_IDENT", "SW_VER", "Heartbeat"]
