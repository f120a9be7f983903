"""The current app (a process global) and the current task (a contextvar), used at the edges."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.base import Celery

# The current app is process-wide: worker threads and pool processes must see the same app,
# and threads do not inherit a contextvar's value.
_apps: dict[str, Celery] = {}
_current_task: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "celeriac_current_task", default=None
)


def set_current_app(app: Celery) -> None:
    _apps["current"] = app


def set_default_app(app: Celery) -> None:
    """Remember the first app created, so ``current_app`` works without configuration."""
    _apps.setdefault("default", app)


def get_current_app() -> Celery:
    """The app set as current, else the first one created, else a fresh default app."""
    app = _apps.get("current") or _apps.get("default")
    if app is not None:
        return app
    from celeriac.app.base import Celery

    return Celery("default")


def get_current_task() -> Any:
    """The task executing in this thread or coroutine, if any."""
    return _current_task.get()


def set_current_task(task: Any) -> contextvars.Token[Any]:
    return _current_task.set(task)


def reset_current_task(token: contextvars.Token[Any]) -> None:
    _current_task.reset(token)
