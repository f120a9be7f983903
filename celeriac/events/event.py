"""One event as Celery builds it: a dict with ``type`` and ``timestamp`` last, and the names
that go with it (its group, its routing key, the sender's UTC offset)."""

from __future__ import annotations

import time
from typing import Any

#: Celery's events exchange (``event_exchange``).
EXCHANGE_NAME = "celeryev"
#: The routing key of a batch of task events (the body is a list).
MULTI_ROUTING_KEY = "task.multi"
#: A worker is gone when no heartbeat came within ``freq`` times this (percent).
HEARTBEAT_EXPIRE_WINDOW = 200
#: Heartbeat interval of a worker (seconds; ``freq`` in its events).
HEARTBEAT_FREQUENCY = 2.0


def Event(type: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """Celery's ``Event()``: ``fields``, then ``timestamp`` (``time.time()``) and ``type``."""
    event = dict(_fields, **fields) if _fields else dict(fields)
    event.update(timestamp=time.time(), type=type)
    return event


def group_from(type: str) -> str:
    """``task-succeeded`` -> ``task``."""
    return type.partition("-")[0]


def routing_key_for(type: str) -> str:
    """``worker-heartbeat`` -> ``worker.heartbeat``."""
    return type.replace("-", ".")


def get_exchange(conn: Any = None, name: str = EXCHANGE_NAME) -> str:
    """The events exchange's name (Celery returns a kombu Exchange; its type depends on the
    broker, which the transport decides here: topic on AMQP, fanout on Redis)."""
    return name


def utcoffset() -> float:
    """The sender's offset in hours *west* of UTC, as Celery sends it (``utcoffset``)."""
    if time.daylight and time.localtime().tm_isdst:
        return time.altzone / 3600
    return time.timezone / 3600


def adjust_timestamp(timestamp: float, offset: float, here: float | None = None) -> float:
    """A sender's timestamp in this host's terms (Celery's ``adjust_timestamp``)."""
    return timestamp - (offset - (utcoffset() if here is None else here)) * 3600


__all__ = [
    "EXCHANGE_NAME",
    "HEARTBEAT_EXPIRE_WINDOW",
    "HEARTBEAT_FREQUENCY",
    "MULTI_ROUTING_KEY",
    "Event",
    "adjust_timestamp",
    "get_exchange",
    "group_from",
    "routing_key_for",
    "utcoffset",
]
