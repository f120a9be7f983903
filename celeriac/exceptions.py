"""Exceptions with Celery's names, importable from ``celeriac.exceptions``."""

from __future__ import annotations

from typing import Any


class CeleriacError(Exception):
    """Base class for celeriac's own errors."""


CeleryError = CeleriacError


class NotYetImplemented(CeleriacError, NotImplementedError):
    """A Celery feature celeriac does not have yet; the message says what to do instead.

    ``feature`` names what is missing, ``instead`` what to use meanwhile. Catch it as
    ``NotImplementedError`` too.
    """

    def __init__(self, message: str, feature: str = "", instead: str = "") -> None:
        super().__init__(message)
        self.feature = feature
        self.instead = instead


class ImproperlyConfigured(CeleriacError):
    """A setting or URL is wrong; the message says which and how to fix it."""


class NotConfigured(ImproperlyConfigured):
    """Something that needs configuration (for example a result backend) has none."""


class ContentDisallowed(CeleriacError):
    """A message's content type is not in ``accept_content``."""


class DecodeError(CeleriacError):
    """A message body could not be decoded (malformed JSON, bad compression, ...)."""


class EncodeError(CeleriacError):
    """A value could not be serialized with the chosen serializer."""


class SecurityError(CeleriacError):
    """A result tried to make the client build something that is not an exception."""


class OperationalError(CeleriacError):
    """The broker or result store could not be reached or used."""


class NotRegistered(KeyError, CeleriacError):
    """The task name is not registered on this app or worker."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"NotRegistered({self.args[0]!r})" if self.args else "NotRegistered()"


class TimeoutError(CeleriacError):
    """``AsyncResult.get(timeout=...)`` ran out of time."""


class TaskError(CeleriacError):
    """Base for task-level control flow errors."""


class TaskRevokedError(CeleriacError):
    """The task was revoked (or expired, or terminated) and did not run to completion."""


class WorkerLostError(CeleriacError):
    """The process executing the task died."""


class Ignore(TaskError):
    """Raised by a task to tell the worker to neither store a result nor ack specially."""


class Reject(TaskError):
    """Raised by a task to reject its message (optionally requeueing it)."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)


class Retry(TaskError):
    """Raised by ``Task.retry()`` after the retry message was published."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: Any = None,
        is_eager: bool = False,
        sig: Any = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        self.state_stored = False  # the worker stored RETRY before sending the retry
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.exc:
            return f"Retry {self.humanize()}: {self.exc!r}"
        return f"Retry {self.humanize()}"


class MaxRetriesExceededError(TaskError):
    """The task called ``retry()`` more often than ``max_retries`` allows."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task when its soft time limit is reached."""


class TimeLimitExceeded(CeleriacError):
    """The task ran past its hard time limit and its process was killed."""


class ChordError(CeleriacError):
    """A task of a chord's header failed."""


class QueueNotFound(KeyError, CeleriacError):
    """A task was routed to a queue that is not declared in ``task_queues``."""


class IncompleteStream(CeleriacError):
    """A stream ended before the message was complete."""


__all__ = [
    "CeleriacError",
    "CeleryError",
    "ChordError",
    "ContentDisallowed",
    "DecodeError",
    "EncodeError",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "MaxRetriesExceededError",
    "NotConfigured",
    "NotRegistered",
    "NotYetImplemented",
    "OperationalError",
    "QueueNotFound",
    "Reject",
    "Retry",
    "SecurityError",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
]
