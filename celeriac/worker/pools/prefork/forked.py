"""What both prefork pools share: forked children kept in a list under one lock."""

from __future__ import annotations

import multiprocessing
import threading
from abc import abstractmethod
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from celeriac.worker.pools.base import Pool, ResultCallback

if TYPE_CHECKING:
    from celeriac.app.base import Celery


@dataclass(eq=False)
class ForkedChild:
    """One child process as its pool keeps it (each pool adds its own pipes and state)."""

    process: BaseProcess

    @property
    def pid(self) -> int:
        return self.process.pid or 0


class ForkedPool(Pool):
    """Children made by :meth:`_spawn`; size, growth and pids as remote control sees them."""

    name = "prefork"

    def __init__(
        self, app: Celery, concurrency: int, *, on_result: ResultCallback, hostname: str
    ) -> None:
        super().__init__(app, concurrency, on_result=on_result, hostname=hostname)
        self._children: list[Any] = []
        self._lock = threading.RLock()
        self._ctx = multiprocessing.get_context("fork")
        self._closing = False  # no new work, no replacements

    @abstractmethod
    def _spawn(self) -> Any:
        """Fork one more child (called with the lock held)."""

    @property
    def size(self) -> int:
        with self._lock:
            return sum(1 for c in self._children if not c.retiring)

    def grow(self, n: int = 1) -> None:
        with self._lock:
            for _ in range(n):
                self._children.append(self._spawn())
            self.concurrency += n

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._children]


__all__ = ["ForkedChild", "ForkedPool"]
