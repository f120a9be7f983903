"""One periodic task: what to send, on which schedule, and when it last ran."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import BaseSchedule, maybe_schedule, schedstate

if TYPE_CHECKING:
    from celeriac.app.base import Celery

#: The keys of a ``beat_schedule`` entry, as Celery reads them.
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})


@dataclass
class ScheduleEntry:
    """Celery's ``ScheduleEntry``: ``last_run_at`` and ``total_run_count`` are what beat
    keeps across restarts."""

    name: str
    task: str
    schedule: BaseSchedule
    last_run_at: datetime
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    total_run_count: int = 0

    def is_due(self) -> schedstate:
        return self.schedule.is_due(self.last_run_at)

    def __repr__(self) -> str:
        return f"<ScheduleEntry: {self.name} {self.task}(*{list(self.args)}, **{self.kwargs}) " + (
            f"{self.schedule!r}>"
        )


def entry_from_config(
    app: Celery, name: str, spec: Any, now: datetime, clock: Any = None
) -> ScheduleEntry:
    """A ``beat_schedule`` item as an entry that has not run yet (it first runs one period
    from ``now``, as in Celery). Bad input raises ImproperlyConfigured naming the entry."""
    where = f"beat_schedule[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(
            f"{where} is a {type(spec).__name__}; it must be a dict with 'task' and 'schedule'"
        )
    unknown = sorted(set(spec) - ENTRY_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(sorted(ENTRY_KEYS))}"
        )
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        raise ImproperlyConfigured(f"{where} needs 'task': the task's name, like 'proj.tasks.add'")
    if spec.get("schedule") is None:
        raise ImproperlyConfigured(
            f"{where} needs 'schedule': seconds, a timedelta, crontab(...) or solar(...)"
        )
    try:
        sched = maybe_schedule(spec["schedule"], bool(spec.get("relative", False)), app=app)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from None
    assert sched is not None
    if clock is not None:  # a controlled clock (tests): on a copy, not the user's object
        sched = copy.copy(sched)
        sched.nowfun = clock
    args = spec.get("args") or ()
    kwargs = spec.get("kwargs") or {}
    options = spec.get("options") or {}
    if not isinstance(args, (list, tuple)):
        raise ImproperlyConfigured(f"{where}: 'args' must be a list or tuple, got {args!r}")
    if not isinstance(kwargs, Mapping) or not isinstance(options, Mapping):
        raise ImproperlyConfigured(f"{where}: 'kwargs' and 'options' must be dicts")
    return ScheduleEntry(
        name=name,
        task=task,
        schedule=sched,
        last_run_at=now,
        args=tuple(args),
        kwargs=dict(kwargs),
        options=dict(options),
    )


__all__ = ["ENTRY_KEYS", "ScheduleEntry", "entry_from_config"]
