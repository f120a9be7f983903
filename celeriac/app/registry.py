"""The task registry (name -> Task), shared tasks, and module discovery."""

from __future__ import annotations

import importlib
from typing import Any

from celeriac.app.task import Task
from celeriac.exceptions import NotRegistered

#: Tasks made with ``@shared_task``: every app sees them.
SHARED_TASKS: dict[str, Task[Any, Any]] = {}


class TaskRegistry(dict[str, Task[Any, Any]]):
    """A dict of tasks by name whose missing keys raise :class:`NotRegistered`."""

    def __missing__(self, key: str) -> Task[Any, Any]:
        shared = SHARED_TASKS.get(key)
        if shared is not None:
            return shared
        raise NotRegistered(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in SHARED_TASKS

    def register(self, task: Task[Any, Any]) -> Task[Any, Any]:
        self[task.name] = task
        return task

    def unregister(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise NotRegistered(name) from None

    def names(self) -> list[str]:
        """Every registered name, shared tasks included, sorted."""
        return sorted(set(self) | set(SHARED_TASKS))


def gen_task_name(module: str, name: str, main: str | None) -> str:
    """Celery's automatic name: ``module.function``, with ``__main__`` replaced by the app name."""
    if module == "__main__" and main:
        module = main
    return f"{module}.{name}"


def import_related(package: str, related_name: str | None) -> Any:
    """Import ``package.related_name``; a missing *related* module is not an error."""
    if not related_name:
        return importlib.import_module(package)
    target = f"{package}.{related_name}"
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name in (target, package):
            return None
        raise


__all__ = ["SHARED_TASKS", "TaskRegistry", "gen_task_name", "import_related"]
