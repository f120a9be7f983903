"""The pipeline one run goes through: the standard hooks around the app's own hooks.

``before`` hooks run in order and ``after`` hooks in reverse (:mod:`celeriac.execution.hooks`),
so the standard hooks (log lines, signals, the task's handlers, result storage) wrap the app's
hooks (``app.add_hook``, the extras'), and in a worker the time limits sit innermost, around
the body alone. Each app composes each pipeline once (again only if its hooks change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from celeriac.execution.hooks import Hook, default_hooks
from celeriac.execution.running import Running
from celeriac.execution.timelimits import TimeLimits

if TYPE_CHECKING:
    from celeriac.app.base import Celery

#: ``eager``: ``Task.apply()``; ``default``: a run without time limits (the asyncio pool);
#: ``worker``: the thread, solo and prefork pools.
Kind = Literal["eager", "default", "worker"]


def compose(kind: Kind, app_hooks: tuple[Any, ...] = ()) -> tuple[Hook, ...]:
    """The pipeline of ``kind`` with ``app_hooks`` inside the standard hooks."""
    for hook in app_hooks:
        if not isinstance(hook, Hook):
            raise TypeError(
                f"{hook!r} is not a hook: an app's hooks subclass celeriac.execution.hooks.Hook"
            )
    hooks: list[Hook] = [*default_hooks(is_eager=kind == "eager"), *app_hooks]
    if kind != "eager":
        hooks.insert(0, Running())  # inspect active: what runs now
    if kind == "worker":
        hooks.append(TimeLimits())
    return tuple(hooks)


def pipeline_for(app: Celery, kind: Kind) -> tuple[Hook, ...]:
    """The pipeline of ``kind`` for ``app``'s tasks (composed once per app and kind)."""
    return app.hook_list.composed(kind, lambda app_hooks: compose(kind, app_hooks))


__all__ = ["Kind", "compose", "pipeline_for"]
