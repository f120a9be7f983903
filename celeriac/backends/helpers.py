"""Small helpers shared by the result backends: dates, URLs, compression, wake-ups."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from celeriac.protocol import compression

COMPRESSED_PAYLOAD_MAGIC = b"\x00celery-compressed\x00"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_date_done(value: Any) -> datetime | None:
    """``date_done`` as an aware UTC datetime, from ISO text (Redis) or naive UTC (SQL)."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed


def decompress_payload(data: bytes | str) -> bytes | str:
    """Undo ``result_compression`` when the payload says it is compressed, whatever the
    reader's own setting (so results stay readable after the setting changes)."""
    if isinstance(data, str) or not data.startswith(COMPRESSED_PAYLOAD_MAGIC):
        return data
    content_type, _, body = data[len(COMPRESSED_PAYLOAD_MAGIC) :].partition(b"\x00")
    return compression.decompress(body, content_type.decode())


class ChangeNotifier:
    """Wakes in-process waiters when a result is stored, without missing a wake-up.

    A waiter takes ``mark()`` before it reads the store and ``wait(mark, timeout)`` after;
    a store that happened in between has moved the generation on, so the wait returns at
    once instead of sleeping through it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._marks = threading.local()

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def mark(self) -> None:
        self._marks.value = self._generation

    def wait(self, timeout: float) -> None:
        seen = getattr(self._marks, "value", -1)
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)


def field(request: Any, *names: str) -> Any:
    """First non-None of ``names`` on a duck-typed request (object or mapping)."""
    for name in names:
        value = request.get(name) if isinstance(request, dict) else getattr(request, name, None)
        if value is not None:
            return value
    return None


__all__ = [
    "COMPRESSED_PAYLOAD_MAGIC",
    "ChangeNotifier",
    "decompress_payload",
    "field",
    "parse_date_done",
    "utcnow",
]
