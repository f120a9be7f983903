"""Random (version 4) UUID strings for task ids and delivery tags, as ``str(uuid.uuid4())``
makes them, at a fraction of the cost: the random bytes come from ``os.urandom`` in blocks,
one block per thread, dropped in a forked child (parent and child never share one)."""

from __future__ import annotations

import os
import threading

_BLOCK = 16 * 256
_VERSION_4 = 0x4000 << 64  # version bits of the 7th and 8th bytes
_VERSION_MASK = ~(0xF000 << 64)
_VARIANT = 0x8000 << 48  # RFC 4122 variant bits of the 9th and 10th bytes
_VARIANT_MASK = ~(0xC000 << 48)


class _Pool(threading.local):
    data: bytes = b""
    pos: int = 0
    generation: int = 0


_pool = _Pool()
_generation = 0


def _after_fork() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_after_fork)


def uuid4() -> str:
    """A new random UUID, formatted as ``str(uuid.uuid4())`` is."""
    pool = _pool
    pos = pool.pos
    if pos >= len(pool.data) or pool.generation != _generation:
        pool.data, pos, pool.generation = os.urandom(_BLOCK), 0, _generation
    pool.pos = pos + 16
    value = int.from_bytes(pool.data[pos : pos + 16], "big")
    value = (value & _VERSION_MASK & _VARIANT_MASK) | _VERSION_4 | _VARIANT
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


__all__ = ["uuid4"]
