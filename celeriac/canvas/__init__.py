"""The canvas at Celery's import path: signatures, ``chain``, ``group``, ``chord``.

``celeriac.canvas`` hands on what its modules define (one concept each): ``signature.py``,
``chain.py``, ``group.py``, ``chord.py``. ``chunks``, ``xmap`` and ``xstarmap`` are not there
yet: they import, and using one raises :class:`~celeriac.exceptions.NotYetImplemented`.
"""

from __future__ import annotations

from typing import Any

from celeriac.canvas.chain import chain
from celeriac.canvas.chord import chord
from celeriac.canvas.group import group
from celeriac.canvas.signature import Signature, maybe_signature, signature, subtask
from celeriac.exceptions import NotYetImplemented

#: What is still missing here, with what to use instead (the words of every such error).
MAPS_FEATURE = "chunks, xmap and xstarmap (Task.chunks, Task.map, Task.starmap)"
MAPS_INSTEAD = (
    "send a group of ordinary signatures: group(add.s(*a) for a in items), or "
    "group(add.s(*a) for a in chunk) per chunk of items"
)


def maps_missing(used: str) -> NotYetImplemented:
    """The error for ``chunks`` / ``xmap`` / ``xstarmap`` (and the Task methods)."""
    return NotYetImplemented(
        f"{used}: celeriac does not have {MAPS_FEATURE} yet. Instead, {MAPS_INSTEAD}. See the "
        "compatibility matrix in the docs (docs/compatibility.md).",
        MAPS_FEATURE,
        MAPS_INSTEAD,
    )


def chunks(*args: Any, **kwargs: Any) -> Any:
    raise maps_missing("chunks()")


def xmap(*args: Any, **kwargs: Any) -> Any:
    raise maps_missing("xmap()")


def xstarmap(*args: Any, **kwargs: Any) -> Any:
    raise maps_missing("xstarmap()")


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
