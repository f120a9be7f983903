"""What a prefork parent and its children say to each other, as named, typed values.

Every value crossing a pipe or the shared-memory slot is one of these (NamedTuples: they
pickle as small as the bare tuples they replace, and are read by name, never by position).

Pipe-fed children (the parent consumes; ``pool.py``):
  parent -> child   a batch ``list[PipeJob]``, or ``None`` (stop after what the pipe holds)
  child -> parent   ``Began`` (a job starts: the parent's consumer sends its early ack),
                    ``list[PipeResult]`` (a batch of outcomes), ``Started`` (a job with a hard
                    limit starts), ``Retire`` (over its memory limit: send nothing more)
  hold-back flag    one shared byte the parent sets when the worker stops: the child runs
                    no job it has not started and reports each as ``PipeResult(started=False)``

Directly consuming children (each consumes itself; ``direct.py``, ``direct_child.py``):
  parent -> child   ``Stop`` (warm or cold), ``Relay`` (a remote-control command to run too),
                    ``Query`` (an inspect command to answer from the child's own state)
  child -> parent   ``LimitStarted`` (wakes the parent to read the slot's hard limit),
                    ``Answer`` (the reply to a ``Query``)
  slot              the batch as ``list[SlotJob]``, the unacknowledged messages as
                    ``list[HeldMessage]``, the running task as ``Running`` (``slot.py``)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from celeriac.protocol.message import TaskCall


class PipeJob(NamedTuple):
    """One job for a pipe-fed child.

    The parent's consumer decoded the message already: the child gets that ``call`` and the
    message's properties, never the body to decode again. A job handed to the pool without
    its call (``call is None``) carries the raw message instead, for the child to decode."""

    key: str
    task_id: str
    name: str
    call: TaskCall | None
    properties: dict[str, Any]
    delivery_info: dict[str, Any]
    body: bytes = b""
    content_type: str = ""
    content_encoding: str = ""
    headers: dict[str, Any] | None = None


class PipeResult(NamedTuple):
    """The outcome of one job, reported by a pipe-fed child."""

    key: str
    task_id: str
    state: str
    runtime: float
    summary: str
    requeue: bool
    started: bool = True  # False: given back unrun (the worker is stopping)


class Began(NamedTuple):
    """A pipe-fed child starts the job of delivery ``key``."""

    key: str


class Started(NamedTuple):
    """The job at the head of the child's queue starts and has this hard limit (seconds)."""

    hard_limit: float


class Retire(NamedTuple):
    """The child is past its memory limit: send it nothing more; it exits when drained."""


class LimitStarted(NamedTuple):
    """A directly consuming child started a hard-limited task (the limit is in its slot)."""


class Stop(NamedTuple):
    """Stop consuming: ``warm`` finishes the running task and gives back the rest."""

    warm: bool


class Relay(NamedTuple):
    """Run remote-control command ``method`` with ``arguments`` in the child too."""

    method: str
    arguments: dict[str, Any]


class Query(NamedTuple):
    """Answer remote-control command ``method`` from the child's own state (``ticket``
    pairs the answer with the question)."""

    ticket: int
    method: str
    arguments: dict[str, Any]


class Answer(NamedTuple):
    """A child's reply to the ``Query`` with this ``ticket``."""

    ticket: int
    result: Any


class SlotJob(NamedTuple):
    """One job of a directly consuming child's batch, as its slot keeps it for the parent
    (``early_ack``: its message is acknowledged when it starts, i.e. not acks_late)."""

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    queue: str
    exchange: str
    routing_key: str
    delivery_tag: str
    redelivered: bool
    early_ack: bool = True


class Running(NamedTuple):
    """The task a child runs now, as its parent sees it (from the slot, or from the job at
    the head of a pipe-fed child's queue and its last ``Started``)."""

    task_id: str
    started: float  # monotonic; for a pipe-fed child: when its hard limit was announced
    hard_limit: float | None


class HeldMessage(NamedTuple):
    """A message a directly consuming child holds unacknowledged."""

    queue: str
    exchange: str
    routing_key: str
    delivery_tag: str


__all__ = [
    "Answer",
    "Began",
    "HeldMessage",
    "LimitStarted",
    "PipeJob",
    "PipeResult",
    "Query",
    "Relay",
    "Retire",
    "Running",
    "SlotJob",
    "Started",
    "Stop",
]
