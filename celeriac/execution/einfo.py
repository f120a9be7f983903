"""``ExceptionInfo``: what Celery passes as ``einfo`` to ``on_failure`` and signal receivers."""

from __future__ import annotations

import traceback as _traceback
from types import TracebackType


class ExceptionInfo:
    """An exception with its formatted traceback (billiard's ``ExceptionInfo`` shape).

    ``str(einfo)`` is the traceback text, so handlers that log ``einfo`` or read
    ``einfo.traceback`` work as they do under Celery.
    """

    def __init__(self, exception: BaseException, traceback: str | None = None) -> None:
        self.exception = exception
        self.type: type[BaseException] = type(exception)
        self.tb: TracebackType | None = exception.__traceback__
        self.traceback = traceback if traceback is not None else format_exception(exception)
        self.internal = False

    @property
    def exc_info(self) -> tuple[type[BaseException], BaseException, TracebackType | None]:
        return self.type, self.exception, self.tb

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"


def format_exception(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` (Celery stores the same text)."""
    return "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))


__all__ = ["ExceptionInfo", "format_exception"]
