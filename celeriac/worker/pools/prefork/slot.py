"""A prefork child's shared-memory slot: the batch it runs, which job of it runs now, and the
messages it holds unacknowledged.

A child that consumes from the broker itself writes here; its parent reads it to enforce hard
time limits and to terminate a task by id while the child lives, and after the child died to
settle its work: store the outcome of the task it was running and give back the messages
it held that were not acknowledged (a job's early ack is sent as it starts, so the jobs of
its batch that started, ``Remains.started``, are acknowledged unless acks_late). Writing
costs no system call; the batch is pickled once per batch. A sequence number (odd while the
child writes) lets the parent read a consistent picture while the child is alive.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from dataclasses import dataclass

from celeriac.worker.pools.prefork.messages import HeldMessage, Running, SlotJob

# seq, started (monotonic; 0: between jobs), hard limit (0: none), batch bytes, held bytes,
# jobs of the batch started so far
_HEADER = struct.Struct("<QddIII")
_TASK_ID = 64
_TASK_ID_AT = _HEADER.size
_HELD_AT = _TASK_ID_AT + _TASK_ID
HELD_MAX = 64 * 1024
_BATCH_AT = _HELD_AT + HELD_MAX
BATCH_MAX = 448 * 1024
SIZE = _BATCH_AT + BATCH_MAX
_TOO_LARGE = 0xFFFFFFFF  # the batch did not fit: only the running task's id is known
_READ_TRIES = 100


@dataclass(frozen=True, slots=True)
class Remains:
    """What a dead child left: the job it ran, the jobs it had not started, what it held.

    ``complete`` is False when the batch was too large to copy here (then only the running
    task's id is known)."""

    running: SlotJob | None
    running_id: str | None
    unstarted: list[SlotJob]
    held: list[HeldMessage]
    complete: bool
    started: tuple[SlotJob, ...] = ()  # the batch's jobs started so far (running included)


class Slot:
    """One per child, created by the parent before ``fork`` (an anonymous shared mapping)."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, SIZE)

    def _header(self) -> tuple[int, float, float, int, int, int]:
        seq, started, limit, batch, held, index = _HEADER.unpack_from(self._mem, 0)
        return seq, started, limit, batch, held, index

    def _write(self, started: float, limit: float, batch: int, held: int, index: int) -> None:
        _HEADER.pack_into(self._mem, 0, self._header()[0] + 1, started, limit, batch, held, index)

    # -- the child writes ------------------------------------------------------------------
    def set_batch(self, batch: list[SlotJob], held: list[HeldMessage]) -> None:
        """A new batch is about to run; ``held``: the messages not acknowledged now."""
        data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        size = len(data)
        if size > BATCH_MAX:
            data, size = b"", _TOO_LARGE
        kept = pickle.dumps(held, pickle.HIGHEST_PROTOCOL) if held else b""
        if len(kept) > HELD_MAX:  # beyond this, leases bring them back (visibility_timeout)
            kept = pickle.dumps(held[: len(held) * HELD_MAX // len(kept) // 2])
        self._write(0.0, 0.0, 0, 0, 0)  # odd: writing
        self._mem[_HELD_AT : _HELD_AT + len(kept)] = kept
        self._mem[_BATCH_AT : _BATCH_AT + len(data)] = data
        self._write(0.0, 0.0, size, len(kept), 0)

    def set_held(self, held: list[HeldMessage]) -> None:
        """The messages not acknowledged now changed between batches (a fetch)."""
        kept = pickle.dumps(held, pickle.HIGHEST_PROTOCOL) if held else b""
        if len(kept) > HELD_MAX:  # beyond this, leases bring them back (visibility_timeout)
            kept = pickle.dumps(held[: len(held) * HELD_MAX // len(kept) // 2])
        _, started, limit, batch, _, index = self._header()
        self._write(started, limit, batch, 0, index)  # odd: writing
        self._mem[_HELD_AT : _HELD_AT + len(kept)] = kept
        self._write(started, limit, batch, len(kept), index)

    def start(self, index: int, task_id: str, started: float) -> None:
        """Job ``index`` of the batch starts now."""
        _, _, _, batch, held, _ = self._header()
        self._write(0.0, 0.0, batch, held, index)
        self._mem[_TASK_ID_AT:_HELD_AT] = task_id.encode()[:_TASK_ID].ljust(_TASK_ID, b"\0")
        self._write(started, 0.0, batch, held, index + 1)

    def set_limit(self, hard_limit: float) -> None:
        _, started, _, batch, held, index = self._header()
        self._write(started, 0.0, batch, held, index)
        self._write(started, hard_limit, batch, held, index)

    def done(self, count: int) -> None:
        """The batch has ended after ``count`` of its jobs started (the rest were held
        back: the child gives them back)."""
        _, started, limit, batch, held, _ = self._header()
        self._write(started, limit, batch, held, count)
        self._write(0.0, 0.0, batch, held, count)

    # -- the parent reads ------------------------------------------------------------------
    def running(self) -> Running | None:
        """The running task (``None``: none, or the child kept writing)."""
        for _ in range(_READ_TRIES):
            seq, started, limit, _, _, _ = self._header()
            if seq % 2:
                continue
            if not started:
                return None
            task_id = bytes(self._mem[_TASK_ID_AT:_HELD_AT]).rstrip(b"\0").decode()
            if self._header()[0] != seq:
                continue
            return Running(task_id, started, limit or None)
        return None

    def remains(self) -> Remains:
        """Read after the child died."""
        _, started, _, batch_len, held_len, index = self._header()
        held: list[HeldMessage] = (
            pickle.loads(self._mem[_HELD_AT : _HELD_AT + held_len]) if held_len else []
        )
        running_id = None
        if started:
            running_id = bytes(self._mem[_TASK_ID_AT:_HELD_AT]).rstrip(b"\0").decode()
        if batch_len == _TOO_LARGE:
            return Remains(None, running_id, [], held, complete=False)
        batch: list[SlotJob] = (
            pickle.loads(self._mem[_BATCH_AT : _BATCH_AT + batch_len]) if batch_len else []
        )
        running = batch[index - 1] if started and 0 < index <= len(batch) else None
        return Remains(
            running, running_id, batch[index:], held, complete=True, started=tuple(batch[:index])
        )

    def close(self) -> None:
        self._mem.close()


__all__ = ["BATCH_MAX", "HELD_MAX", "SIZE", "Remains", "Slot"]
