"""Each thread's held result writes: the bookkeeping behind :class:`WriteBatching`.

A store that can send a run of results together (one round trip, one transaction) keeps a
:class:`HeldWrites`: the worker opens a batch per run of jobs, the result hook stores inside
:meth:`HeldWrites.deferring`, and the store's ``flush_writes`` takes what was held, in order.
What a write holds (a row's values, a statement) is the store's business.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

_W = TypeVar("_W")


class HeldWrites(Generic[_W]):
    """Per thread: an open batch (or none) and whether stores are held in it now."""

    def __init__(self) -> None:
        self._local = threading.local()

    def open(self) -> None:
        """Start collecting this thread's deferred writes (an open batch stays as it is)."""
        if getattr(self._local, "writes", None) is None:
            self._local.writes = []

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Within this block, :meth:`hold` keeps this thread's writes in its open batch."""
        self._local.defer = True
        try:
            yield
        finally:
            self._local.defer = False

    def hold(self, write: _W) -> bool:
        """Keep ``write`` for the batch's flush; False when none is open or the caller is not
        inside :meth:`deferring` (the store then writes at once)."""
        writes: list[_W] | None = getattr(self._local, "writes", None)
        if writes is None or not getattr(self._local, "defer", False):
            return False
        writes.append(write)
        return True

    def pending(self) -> int:
        """How many writes this thread's batch holds."""
        return len(getattr(self._local, "writes", None) or ())

    def take(self, close: bool = False) -> list[_W]:
        """What this thread's batch holds, in order, leaving it empty (or ended: ``close``)."""
        writes: list[_W] = getattr(self._local, "writes", None) or []
        self._local.writes = None if close else []
        return writes


__all__ = ["HeldWrites"]
