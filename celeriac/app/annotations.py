"""``task_annotations``: override task attributes by task name, for every task, or by code.

Accepted shapes (as Celery's): a dict ``{'tasks.add': {'rate_limit': '10/s'}}`` (``'*'``
matches every task), an object with ``annotate(task) -> dict | None``, a dotted path to such a
class, or a list of those (earlier entries win). Each returned key is set on the task
(``rate_limit``, ``time_limit``, ``acks_late``, ...); a ``'*'`` entry is applied after the
one naming the task, so it wins where both set an attribute, as in Celery. Celery's
``'@method'`` keys (wrapping a task method) are not supported and are reported.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

logger = logging.getLogger("celeriac.annotations")


class MapAnnotation:
    """A dict of task name (or ``'*'``) -> attributes."""

    def __init__(self, table: Mapping[str, Mapping[str, Any]]) -> None:
        self.table = dict(table)

    def annotate(self, task: Task[Any, Any]) -> Mapping[str, Any] | None:
        return self.table.get(task.name)

    def annotate_any(self) -> Mapping[str, Any] | None:
        return self.table.get("*")


def _load(entry: Any) -> Any:
    if isinstance(entry, Mapping):
        return MapAnnotation(entry)
    if isinstance(entry, str):
        module, sep, attr = entry.partition(":")
        if not sep:
            module, _, attr = entry.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        return obj() if isinstance(obj, type) else obj
    if isinstance(entry, type):
        return entry()
    return entry


def prepare_annotations(annotations: Any) -> list[Any]:
    """Expand the setting into objects with ``annotate(task)``."""
    if not annotations:
        return []
    if not isinstance(annotations, (list, tuple)):
        annotations = [annotations]
    return [_load(entry) for entry in annotations]


def resolve(task: Task[Any, Any], annotations: list[Any]) -> list[Mapping[str, Any]]:
    """Celery's order: the first annotation naming the task, then the first ``'*'`` one (which
    is applied last, so it wins where both set an attribute)."""
    named = next(filter(None, (a.annotate(task) for a in annotations)), None)
    anys = (a.annotate_any() for a in annotations if hasattr(a, "annotate_any"))
    wildcard = next(filter(None, anys), None)
    return [d for d in (named, wildcard) if d]


def annotate_task(task: Task[Any, Any], annotations: list[Any]) -> None:
    """Set the attributes the annotations give ``task``."""
    for values in resolve(task, annotations):
        for key, value in values.items():
            if key.startswith("@"):
                logger.warning("task_annotations: %r (method wrapping) is not supported", key)
                continue
            setattr(task, key, value)


def apply_annotations(app: Celery) -> None:
    """Annotate every registered task of ``app`` (the worker does this at start)."""
    annotations = prepare_annotations(app.conf.task_annotations)
    if not annotations:
        return
    for task in list(app.tasks.values()):
        annotate_task(task, annotations)


__all__ = [
    "MapAnnotation",
    "annotate_task",
    "apply_annotations",
    "prepare_annotations",
    "resolve",
]
