"""The current app (a process global) and the current task (a contextvar).

Every layer may read them (a result finds its app, a log line its task), so they live at the
bottom; the app layer registers how a default app is made (``use_default_factory``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.base import Celery

# The current app is process-wide: worker threads and pool processes must see the same app,
# and threads do not inherit a contextvar's value.
_apps: dict[str, Celery] = {}
_factory: list[Callable[[], Celery]] = []  # set once, by celeriac.app.base on import
_current_task: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "celeriac_current_task", default=None
)


def set_current_app(app: Celery) -> None:
    _apps["current"] = app


def set_default_app(app: Celery) -> None:
    """Remember the first app created, so ``current_app`` works without configuration."""
    _apps.setdefault("default", app)


def use_default_factory(factory: Callable[[], Celery]) -> None:
    """How ``get_current_app`` makes an app when none was created (``Celery("default")``)."""
    _factory[:] = [factory]


def get_current_app() -> Celery:
    """The app set as current, else the first one created, else a fresh default app."""
    app = _apps.get("current") or _apps.get("default")
    if app is not None:
        return app
    if not _factory:  # only before celeriac.app.base is imported (importing celeriac does it)
        raise RuntimeError("no app yet: create one with celeriac.Celery('proj') first")
    return _factory[0]()


def get_current_task() -> Any:
    """The task executing in this thread or coroutine, if any."""
    return _current_task.get()


def add_to_parent(result: Any) -> None:
    """Record ``result`` (a task or group just sent) in the children of the task running
    here, as Celery's trail does; nothing outside a task or in a task called directly."""
    task = _current_task.get()
    if task is not None and not task.request.called_directly:
        task.add_trail(result)


def set_current_task(task: Any) -> contextvars.Token[Any]:
    return _current_task.set(task)


def reset_current_task(token: contextvars.Token[Any]) -> None:
    _current_task.reset(token)
