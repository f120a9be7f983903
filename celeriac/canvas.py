"""Celery's canvas names (``signature``, ``chain``, ``group``, ``chord``, ...), not built yet.

They import, so code written for Celery loads; calling one raises
:class:`~celeriac.exceptions.NotYetImplemented` saying what to do instead.
"""

from __future__ import annotations

from typing import Any

from celeriac.utils.missing import CANVAS


class Signature(dict[str, Any]):
    """Celery's signature type (for ``isinstance`` checks); making one raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise CANVAS.error("Signature()")


def signature(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("signature()")


def maybe_signature(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("maybe_signature()")


def chain(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("chain()")


def group(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("group()")


def chord(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("chord()")


def chunks(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("chunks()")


def xmap(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("xmap()")


def xstarmap(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("xstarmap()")


def subtask(*args: Any, **kwargs: Any) -> Any:
    raise CANVAS.error("subtask()")


__all__ = [
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
