"""The dead-letter queue (beyond Celery): where messages go after their final failure.

With ``task_dead_letter_queue = '{queue}.dead'`` a task that fails for good (an error with
no retry left, or ``Reject(requeue=False)``) is re-published, unchanged but for a few
``x-dead-letter-*`` headers (reason, exception, traceback, source queue, time, worker), to
``<queue>.dead`` through the broker's normal publish path, so it works on every broker.
:func:`list_dead`, :func:`replay` and :func:`purge` (``celeriac dead list|replay|purge``)
inspect, re-queue and delete them. :class:`DeadLetters` is the hook that sends them; every app
has it (``celeriac.extras`` registers it), and it acts only when the setting is on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.exceptions import Reject
from celeriac.execution.hooks import Hook, Outcome, TaskRun
from celeriac.protocol import task_v2
from celeriac.protocol.entities import Queue
from celeriac.protocol.message import Message, TaskCall

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.execution.context import Context
    from celeriac.transports.base import Delivery, Transport

logger = logging.getLogger("celeriac.deadletter")

PREFIX = "x-dead-letter-"
#: Longest traceback kept in a header (AMQP header tables have practical size limits).
MAX_TRACEBACK = 16_000

_connections: weakref.WeakKeyDictionary[Celery, tuple[int, Transport]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead message, as ``celeriac dead list`` shows it."""

    task_id: str
    task: str
    queue: str
    reason: str
    exception: str
    traceback: str
    time: float
    hostname: str
    args_repr: str
    kwargs_repr: str


class DeadLetters(Hook):
    """The hook: a final failure or a ``Reject(requeue=False)`` goes to ``<queue>.dead``."""

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        exc = outcome.exception
        final = outcome.state == states.FAILURE or (
            outcome.state == states.REJECTED and not (isinstance(exc, Reject) and exc.requeue)
        )
        if run.is_eager or not final or not run.app.conf["task_dead_letter_queue"]:
            return
        reason = "rejected" if outcome.state == states.REJECTED else "failed"
        send_to_dead_letter(
            run.app,
            run.call,
            run.request,
            reason=reason,
            exc=exc,
            traceback=outcome.traceback,
        )


def dead_queue_name(app: Celery, queue: str) -> str | None:
    """The dead-letter queue of ``queue`` (None when dead-lettering is off)."""
    pattern = app.conf.task_dead_letter_queue
    return str(pattern).format(queue=queue) if pattern else None


def source_queue(app: Celery, delivery_info: Mapping[str, Any] | None) -> str:
    """The queue a message came from: its routing key (exchange ``''`` or a direct queue)."""
    info = delivery_info or {}
    return str(info.get("routing_key") or app.conf.task_default_queue)


def send_to_dead_letter(
    app: Celery,
    call: TaskCall,
    request: Context,
    *,
    reason: str,
    exc: BaseException | None,
    traceback: str | None,
) -> str | None:
    """Publish ``call`` to its dead-letter queue; return the queue name (None: off/failed)."""
    queue = source_queue(app, request.delivery_info)
    dead = dead_queue_name(app, queue)
    if dead is None or queue == dead:
        return None
    headers = {
        f"{PREFIX}reason": reason,
        f"{PREFIX}exception": repr(exc) if exc is not None else "",
        f"{PREFIX}traceback": (traceback or "")[-MAX_TRACEBACK:],
        f"{PREFIX}queue": queue,
        f"{PREFIX}time": time.time(),
        f"{PREFIX}hostname": request.hostname or "",
    }
    try:
        message = task_v2.encode(
            TaskCall(**{**_fields(call), "extra_headers": {**call.extra_headers, **headers}}),
            serializer=app.conf.task_serializer,
            properties=_properties(request.properties),
        )
        _publish(app, message, dead)
    except Exception as err:  # never turn a task failure into a worker crash
        logger.error("Could not dead-letter %s[%s] to %r: %r", call.name, call.id, dead, err)
        return None
    logger.warning("Task %s[%s] dead-lettered to %s (%s)", call.name, call.id, dead, reason)
    return dead


#: Properties a transport adds on delivery; the new publish makes its own.
_TRANSPORT_PROPERTIES = frozenset({"delivery_info", "delivery_tag", "body_encoding"})


def _properties(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (properties or {}).items() if k not in _TRANSPORT_PROPERTIES}


def _fields(call: TaskCall) -> dict[str, Any]:
    return {name: getattr(call, name) for name in call.__dataclass_fields__}


def _publish(app: Celery, message: Message, queue: str) -> None:
    with _lock:
        entry = _connections.get(app)
        conn = entry[1] if entry is not None and entry[0] == os.getpid() else None
        if conn is None:
            # The copy must be in its queue before the original is acked (RabbitMQ: confirms).
            conn = app.connection(confirm_publish=True)
            conn.open()
            _connections[app] = (os.getpid(), conn)
            # Close it with the app: a dropped AMQP transport leaves its socket open.
            weakref.finalize(app, _close_quietly, conn)
        conn.declare_queue(Queue(queue))
        conn.publish(message, exchange="", routing_key=queue)


def _close_quietly(conn: Transport) -> None:
    # The broker may be gone by then; there is nothing left to release.
    with contextlib.suppress(Exception):
        conn.close()


# -- inspecting and replaying ------------------------------------------------------------------
def _drain(conn: Transport, queue: str, limit: int | None) -> list[Delivery]:
    """Take every ready message of ``queue`` (up to ``limit``); the caller settles them."""
    taken: list[Delivery] = []
    while limit is None or len(taken) < limit:
        want = 100 if limit is None else min(100, limit - len(taken))
        batch = conn.get([queue], max_messages=want, timeout=None)
        if not batch:
            break
        taken.extend(batch)
    return taken


def describe(message: Message) -> DeadLetter:
    """The dead-letter facts of one message."""
    h = message.headers
    return DeadLetter(
        task_id=str(h.get("id", "")),
        task=str(h.get("task", "")),
        queue=str(h.get(f"{PREFIX}queue", "")),
        reason=str(h.get(f"{PREFIX}reason", "")),
        exception=str(h.get(f"{PREFIX}exception", "")),
        traceback=str(h.get(f"{PREFIX}traceback", "")),
        time=float(h.get(f"{PREFIX}time") or 0.0),
        hostname=str(h.get(f"{PREFIX}hostname", "")),
        args_repr=str(h.get("argsrepr", "")),
        kwargs_repr=str(h.get("kwargsrepr", "")),
    )


def list_dead(app: Celery, dead_queue: str, limit: int | None = None) -> list[DeadLetter]:
    """The messages waiting in ``dead_queue`` (left in place)."""
    with app.connection() as conn:
        conn.declare_queue(Queue(dead_queue))
        taken = _drain(conn, dead_queue, limit)
        if taken:
            conn.restore(taken)
    return [describe(d.message) for d in taken]


def replay(app: Celery, dead_queue: str, ids: Iterable[str] | None = None) -> int:
    """Publish dead messages (all, or those with ``ids``) back to their queue; return how many."""
    wanted = set(ids) if ids is not None else None
    with app.connection() as conn:
        conn.declare_queue(Queue(dead_queue))
        taken = _drain(conn, dead_queue, None)
        chosen = [d for d in taken if wanted is None or d.message.headers.get("id") in wanted]
        keep = [d for d in taken if not (wanted is None or d.message.headers.get("id") in wanted)]
        for delivery in chosen:
            message = delivery.message
            queue = str(message.headers.get(f"{PREFIX}queue") or app.conf.task_default_queue)
            headers = {k: v for k, v in message.headers.items() if not k.startswith(PREFIX)}
            conn.declare_queue(app.router.queue(queue))
            conn.publish(_with_headers(message, headers), exchange="", routing_key=queue)
        if chosen:
            conn.ack(chosen)
        if keep:
            conn.restore(keep)
    return len(chosen)


def purge(app: Celery, dead_queue: str) -> int:
    """Delete every message of ``dead_queue``; return how many."""
    with app.connection() as conn:
        conn.declare_queue(Queue(dead_queue))
        return conn.purge(dead_queue)


def _with_headers(message: Message, headers: dict[str, Any]) -> Message:
    return Message(
        body=message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=headers,
        properties=dict(message.properties),
    )


__all__ = [
    "DeadLetter",
    "DeadLetters",
    "dead_queue_name",
    "describe",
    "list_dead",
    "purge",
    "replay",
    "send_to_dead_letter",
]
