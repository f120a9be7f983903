"""celeriac: Celery's API and wire protocol, simpler inside, with an embedded SQLite default."""

from __future__ import annotations

from typing import Any

from celeriac.app.base import Celery, shared_task
from celeriac.app.task import Task
from celeriac.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from celeriac.protocol.entities import Exchange, Queue
from celeriac.result import AsyncResult, GroupResult, ResultSet
from celeriac.utils import current
from celeriac.utils.version import VERSION, __version__

# The composition root: the extras give every app their hooks (nothing below imports them).
import celeriac.extras  # noqa: F401  isort: skip


class _Current:
    """``current_app`` / ``current_task``: forwards to what is current at the moment of use."""

    def __init__(self, getter: Any, label: str) -> None:
        object.__setattr__(self, "_getter", getter)
        object.__setattr__(self, "_label", label)

    def _get(self) -> Any:
        return self._getter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get(), name, value)

    def __bool__(self) -> bool:
        return self._get() is not None

    def __eq__(self, other: object) -> bool:
        return bool(self._get() == other)

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return f"<{self._label}: {self._get()!r}>"


current_app: Any = _Current(current.get_current_app, "current_app")
current_task: Any = _Current(current.get_current_task, "current_task")

__all__ = [
    "VERSION",
    "AsyncResult",
    "Celery",
    "Exchange",
    "GroupResult",
    "Queue",
    "ResultSet",
    "Signature",
    "Task",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
