"""What only some result stores can do: one small Protocol per capability.

:class:`~celeriac.backends.base.ResultBackend` states what every store does. A store that can
do more implements one of these Protocols as well (plain methods, no registration), and a
caller asks ``isinstance(backend, UniqueClaims)`` before using it, never ``getattr``. Each
capability has its own conformance module, ``tests/conformance/test_cap_<name>.py``, run on
exactly the stores that claim it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable


@runtime_checkable
class WriteBatching(Protocol):
    """A thread's result writes can be held and sent together (the worker: many results,
    one round trip).

    The worker opens a batch per run of jobs; the result hook stores final states inside
    :meth:`deferring`; the worker sends them with :meth:`flush_writes` before it reports
    (and acknowledges) the jobs. Writes outside :meth:`deferring` go out at once as usual.
    """

    def open_write_batch(self) -> bool:
        """Start collecting this thread's deferred result writes; ``False`` when this store,
        as configured, cannot (then nothing is held and writes go out at once)."""
        ...

    def deferring(self) -> AbstractContextManager[None]:
        """Within this block, this thread's stores are held in its open batch (if any)."""
        ...

    def pending_writes(self) -> int:
        """How many writes this thread's batch holds."""
        ...

    def flush_writes(self, close: bool = False) -> None:
        """Send the held writes, in order, each with the guard it would have had alone;
        with ``close`` the batch ends too (later writes go out at once)."""


@runtime_checkable
class OpensAtStart(Protocol):
    """A store the worker opens before it takes a message: one it cannot write (a read-only
    file) stops the worker at start with an error naming the problem, instead of failing
    every result it would store."""

    def open(self) -> None:
        """Connect and check that results can be written; raise a clear error if not."""
        ...


@runtime_checkable
class UniqueClaims(Protocol):
    """Keys can be claimed atomically with an expiry (unique tasks, ``unique_for=``)."""

    def claim_unique(self, key: str, task_id: str, ttl: float) -> str:
        """Atomically claim ``key`` for ``task_id`` for ``ttl`` seconds; return the owner's id.

        If ``key`` is free (never claimed, or its claim expired) it now belongs to ``task_id``
        and ``task_id`` is returned; otherwise the current owner's task id is returned and
        nothing changes. Must be atomic across processes and machines: Redis uses
        ``SET key task_id NX PX ttl`` then ``GET key``; an SQL store an upsert whose update
        applies only when the stored claim has expired, in one transaction. A ``ttl`` below
        the store's resolution is rounded up to it (Redis: 1 ms).
        """
        ...


@dataclass(frozen=True, slots=True)
class ChordParts:
    """A chord's header, complete: what the one worker that publishes the body needs."""

    group_id: str
    #: ``(task id, state, value)`` of every header task, in ``group_index`` order.
    results: list[tuple[str, str, Any]]
    #: The claim the store gave this worker (released by :meth:`JoinsChords.chord_done`).
    token: str


@runtime_checkable
class JoinsChords(Protocol):
    """The store counts a chord's finished header tasks itself and tells exactly one worker
    that the header is complete (no ``chord_unlock`` polling)."""

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Called by the client before the header is published: the chord has ``size`` tasks
        (a chord sent again with the same group id starts over)."""
        ...

    def chord_part_return(
        self, group_id: str, task_id: str, group_index: int | None, state: str, result: Any
    ) -> ChordParts | None:
        """Record that header task ``task_id`` ended in ``state`` with ``result``.

        A task recorded again (retried, redelivered) counts once. Returns the complete header
        to exactly one caller (an atomic claim), None to every other one and while tasks
        are missing."""
        ...

    def chord_done(self, parts: ChordParts) -> None:
        """The body was published (or failed): drop the chord's counters; a late copy of a
        header task then does nothing."""
        ...

    def add_to_chord(self, group_id: str) -> None:
        """The header has one task more (``Task.add_to_chord``; Redis: Celery's ``.t``
        counter). Called by a header task before it ends, so the chord is never complete
        without the added task."""
        ...


def write_batching(backend: object) -> WriteBatching | None:
    """``backend`` when it claims :class:`WriteBatching`, else None.

    The same answer as ``isinstance(backend, WriteBatching)``, cached per class: that check
    costs some 15 microseconds and the worker asks once per batch of jobs (often one job).
    """
    cls = type(backend)
    claims = _BATCHES.get(cls)
    if claims is None:  # methods only: the class answers for its instances
        claims = _BATCHES[cls] = issubclass(cls, WriteBatching)
    return cast(WriteBatching, backend) if claims else None


_BATCHES: dict[type, bool] = {}


__all__ = [
    "ChordParts",
    "JoinsChords",
    "OpensAtStart",
    "UniqueClaims",
    "WriteBatching",
    "write_batching",
]
