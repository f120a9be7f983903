"""The token buckets of one worker, shared by every process of it.

A rate limit is per worker, as in Celery: ``10/m`` is one task every 6 s for the worker, on
every pool, whichever process runs the task. The worker makes one :class:`WorkerBuckets`
before its pool starts; the children of a prefork pool that consume for themselves (Redis,
RabbitMQ) inherit it and take their tokens from the same buckets as each other.

The buckets live in a small file mapping (unlinked at once), one fixed-size slot per task
name: a 64-bit hash of the name, the rate (tokens/s; 0: no limit), the tokens and when they
were counted (``time.monotonic()``, one clock for every process of a host). Each bucket holds
one token at most (Celery's capacity 1: the first task runs at once, the next one 1/rate
later). Slots are found by open addressing and never freed; a name that finds the table full
is not limited (with a warning).

Access is serialized by a thread lock within a process and an ``fcntl`` record lock between
processes; the kernel drops a record lock with the process that holds it, so a pool process
killed at any moment never leaves the others waiting.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from celeriac.exceptions import OperationalError
from celeriac.utils import forksafe

logger = logging.getLogger(__name__)

#: Task names the table holds (only names with a rate take a slot).
SLOTS = 1024
#: At most this many tokens wait in a bucket (no burst beyond one task).
CAPACITY = 1.0
#: key (0: free), rate, tokens, when counted
_SLOT = struct.Struct("<Qddd")


def _key(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class WorkerBuckets:
    """``take(name, rate)``: 0.0 when a task may run now, else the seconds to wait."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._slots = slots
        fd, path = tempfile.mkstemp(prefix="celeriac-buckets-")
        os.unlink(path)
        try:
            os.ftruncate(fd, slots * _SLOT.size)
        except OSError as exc:  # a full disk, or a file size limit: say which file and why
            os.close(fd)
            raise OperationalError(
                f"Cannot make the worker's rate-limit table, a {slots * _SLOT.size} byte file "
                f"{path!r}: {exc.strerror}; the disk is full or the file cannot grow. Free "
                "space there (or raise the file size limit), or set TMPDIR to a directory "
                "with space."
            ) from exc
        self._fd = fd
        self._mem = mmap.mmap(fd, slots * _SLOT.size)
        self._close = weakref.finalize(self, _release, self._mem, fd)
        self._lock = threading.Lock()
        self._warned = False
        forksafe.guard(self)  # no child is forked while a thread of its parent holds _lock

    def take(self, name: str, rate: float) -> float:
        """Take one token from ``name``'s bucket. ``rate`` (tokens/s) starts a bucket the
        table does not hold yet; after that the table's rate counts (changed by
        :meth:`set_rate` in any process)."""
        key = _key(name)
        now = time.monotonic()
        with self._locked():
            index = self._find(key)
            if index is None:
                return self._full(name)
            found, stored, tokens, stamp = _SLOT.unpack_from(self._mem, index * _SLOT.size)
            if not found:
                stored, tokens, stamp = rate, CAPACITY, now
            if stored <= 0:
                return 0.0
            tokens = min(CAPACITY, tokens + max(0.0, now - stamp) * stored)
            wait = 0.0 if tokens >= 1.0 else max((1.0 - tokens) / stored, 0.001)
            if not wait:
                tokens -= 1.0
            _SLOT.pack_into(self._mem, index * _SLOT.size, key, stored, tokens, now)
        return wait

    def set_rate(self, name: str, rate: float) -> None:
        """A new rate for ``name`` (0: none) starts with a full bucket; the rate it already
        has changes nothing (so every process may apply the same remote-control change)."""
        key = _key(name)
        with self._locked():
            index = self._find(key)
            if index is None:
                self._full(name)
                return
            found, stored, _, _ = _SLOT.unpack_from(self._mem, index * _SLOT.size)
            if not found or stored != rate:
                _SLOT.pack_into(
                    self._mem, index * _SLOT.size, key, rate, CAPACITY, time.monotonic()
                )

    def close(self) -> None:
        self._close()

    def _find(self, key: int) -> int | None:
        """The slot holding ``key``, else the free slot it goes to; None: the table is full."""
        start = key % self._slots
        for step in range(self._slots):
            index = (start + step) % self._slots
            found = _SLOT.unpack_from(self._mem, index * _SLOT.size)[0]
            if found in (0, key):
                return index
        return None

    def _full(self, name: str) -> float:
        if not self._warned:
            self._warned = True
            logger.warning("More than %d rate-limited tasks: %r is not limited", self._slots, name)
        return 0.0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)


def _release(mem: mmap.mmap, fd: int) -> None:
    mem.close()
    os.close(fd)


__all__ = ["CAPACITY", "SLOTS", "WorkerBuckets"]
