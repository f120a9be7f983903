"""A received task message, decoded and matched with its task; and what to do with bad ones.

:func:`build_request` turns a :class:`~celeriac.transports.base.Delivery` into a
:class:`Request` or raises :class:`BadMessage`. :func:`discard_bad_message` applies the
policy for bad input: log an error that says what to fix, store a FAILURE when the task id
is known (so a client waiting on the result is not left hanging), reject without requeue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.exceptions import ContentDisallowed, DecodeError, NotRegistered, SecurityError
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task
    from celeriac.transports.base import Delivery

logger = logging.getLogger("celeriac.worker.request")

UNKNOWN_TASK_ERROR = """\
Received unregistered task of type %r (id %s).
The message has been ignored and discarded.

Did you remember to import the module containing this task?
Start the worker with -A pointing at your app, and make sure the task's module is
imported by it (include=[...] on the app, or the `imports` setting).

The message headers: %s
The delivery info for this task is: %s"""


class BadMessage(Exception):
    """A message the worker cannot run; ``cause`` is the underlying error."""

    def __init__(self, cause: Exception, task_name: str | None, task_id: str | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.task_name = task_name
        self.task_id = task_id


@dataclass(eq=False, slots=True)
class Request:
    """One delivery being handled by this worker, from receipt to ack."""

    delivery: Delivery
    call: TaskCall
    task: Task[Any, Any]
    acks_late: bool
    reject_on_worker_lost: bool
    acks_on_failure_or_timeout: bool
    eta: float | None = None  # Unix time; None when it may run now
    expires: float | None = None  # Unix time
    received: float = field(default_factory=monotonic)
    acknowledged: bool = False
    rate_ok: bool = False  # took its rate-limit token already

    @property
    def key(self) -> str:
        """Unique per delivery (a retried task reuses its id, never its delivery tag)."""
        return self.delivery.delivery_tag

    @property
    def id(self) -> str:
        return self.call.id

    @property
    def name(self) -> str:
        return self.call.shadow or self.call.name

    @property
    def reply_to(self) -> str | None:
        """Where rpc:// results go (the sender's queue)."""
        value = self.delivery.message.properties.get("reply_to")
        return value if isinstance(value, str) else None

    @property
    def correlation_id(self) -> str:
        value = self.delivery.message.properties.get("correlation_id")
        return value if isinstance(value, str) else self.call.id

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def info(self) -> dict[str, Any]:
        """What ``inspect active/reserved`` shows (Celery's keys)."""
        call = self.call
        return {
            "id": call.id,
            "name": call.name,
            "args": list(call.args),
            "kwargs": dict(call.kwargs),
            "type": call.name,
            "hostname": None,
            "time_start": None,
            "acknowledged": self.acknowledged,
            "delivery_info": self.delivery.delivery_info,
        }


def build_request(app: Celery, delivery: Delivery, accept: list[str] | None) -> Request:
    """Decode ``delivery`` into a Request; raise :class:`BadMessage` if it cannot run here."""
    message = delivery.message
    name, task_id = task_v2.peek_headers(message)
    # Unknown names are reported before decoding, as Celery does: the body may not even be
    # in a format this worker accepts.
    if name is not None and name not in app.tasks:
        raise BadMessage(NotRegistered(name), name, task_id)
    try:
        call = task_v2.decode(message, accept=accept)
        task = app.tasks[call.name]
    except (ContentDisallowed, DecodeError, NotRegistered, SecurityError) as exc:
        raise BadMessage(exc, name, task_id) from exc
    except Exception as exc:  # a foreign producer can send anything; never crash on it
        raise BadMessage(DecodeError(f"{type(exc).__name__}: {exc}"), name, task_id) from exc
    return Request(
        delivery=delivery,
        call=call,
        task=task,
        acks_late=bool(task.resolve("acks_late", "task_acks_late")),
        reject_on_worker_lost=bool(
            task.resolve("reject_on_worker_lost", "task_reject_on_worker_lost")
        ),
        acks_on_failure_or_timeout=bool(
            task.resolve("acks_on_failure_or_timeout", "task_acks_on_failure_or_timeout")
        ),
        eta=call.eta.timestamp() if call.eta is not None else None,
        expires=call.expires.timestamp() if call.expires is not None else None,
    )


def discard_bad_message(
    app: Celery, delivery: Delivery, err: BadMessage, sender: object = None
) -> None:
    """Log ``err`` so the user knows the fix, store FAILURE if possible, reject (no requeue).

    ``sender`` is the consumer, as in Celery's ``task_unknown`` / ``task_rejected``; an
    unknown task sends only ``task_unknown`` (Celery's ``on_unknown_task``)."""
    cause, message = err.cause, delivery.message
    if isinstance(cause, NotRegistered):
        logger.error(
            UNKNOWN_TASK_ERROR,
            err.task_name,
            err.task_id,
            dict(message.headers),
            delivery.delivery_info,
        )
        signals.task_unknown.send(
            sender=sender, message=message, exc=cause, name=err.task_name, id=err.task_id
        )
    elif isinstance(cause, ContentDisallowed):
        logger.error(
            "Rejected task %s[%s]: content type %r is not accepted. %s",
            err.task_name,
            err.task_id,
            message.content_type,
            cause,
        )
    elif isinstance(cause, SecurityError):
        logger.error(
            "Rejected task %s[%s]: its signature does not verify: %s",
            err.task_name,
            err.task_id,
            cause,
        )
    else:
        logger.error(
            "Rejected malformed message (task %s, id %s, content type %r): %s",
            err.task_name or "unknown",
            err.task_id or "unknown",
            message.content_type,
            cause,
        )
    # A forged message must not write a result under an id it chose.
    if err.task_id and not isinstance(cause, SecurityError):
        try:
            app.backend.mark_as_failure(err.task_id, cause)
        except Exception as exc:  # no result backend configured, or it is down
            logger.debug("Could not store the failure of %s: %r", err.task_id, exc)
    delivery.reject(requeue=False)
    if not isinstance(cause, NotRegistered):
        signals.task_rejected.send(sender=sender, message=message, exc=cause)


__all__ = ["UNKNOWN_TASK_ERROR", "BadMessage", "Request", "build_request", "discard_bad_message"]
