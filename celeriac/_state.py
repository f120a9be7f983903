"""The current app and current task: one contextvar each, used only at the edges."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery

_current_app: contextvars.ContextVar[Celery | None] = contextvars.ContextVar(
    "celeriac_current_app", default=None
)
_default_app: list[Celery] = []
_current_task: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "celeriac_current_task", default=None
)


def set_current_app(app: Celery) -> None:
    _current_app.set(app)


def set_default_app(app: Celery) -> None:
    """Remember the first app created, so ``current_app`` works without configuration."""
    if not _default_app:
        _default_app.append(app)


def get_current_app() -> Celery:
    """The app set as current, else the first one created, else a fresh default app."""
    app = _current_app.get()
    if app is not None:
        return app
    if _default_app:
        return _default_app[0]
    from celeriac.app import Celery

    return Celery("default")


def get_current_task() -> Any:
    return _current_task.get()


def set_current_task(task: Any) -> contextvars.Token[Any]:
    return _current_task.set(task)


def reset_current_task(token: contextvars.Token[Any]) -> None:
    _current_task.reset(token)
