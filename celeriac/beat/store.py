"""The schedule store (beyond Celery): periodic tasks kept in a database that beat reads on
every tick, so they change without a restart (``celeriac schedule ...`` or this API).

A store holds, per entry: its definition (task, schedule, args, kwargs, options), whether it
is paused, whether a run was asked for now, and its runs (last run, count). Each is written on
its own, so a user pausing an entry and beat recording a run never overwrite each other.
Beat loads ``beat_schedule`` into the store at start (definitions replaced, runs kept).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celeriac.beat.codec import schedule_from_doc, schedule_to_doc
from celeriac.schedules import BaseSchedule, maybe_schedule


@dataclass
class StoredEntry:
    """One entry as the store keeps it."""

    name: str
    task: str
    schedule: dict[str, Any]
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    run_now: bool = False
    last_run_at: datetime | None = None
    total_run_count: int = 0

    def definition(self) -> str:
        """The definition as stored: JSON of task, schedule, args, kwargs, options."""
        doc = {
            "task": self.task,
            "schedule": self.schedule,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
        }
        return json.dumps(doc, sort_keys=True)

    def make_schedule(self) -> BaseSchedule:
        return schedule_from_doc(self.schedule)


def entry_from_row(
    name: str,
    definition: str,
    paused: bool,
    run_now: bool,
    last_run_at: str | None,
    total_run_count: int,
) -> StoredEntry:
    doc = json.loads(definition)
    return StoredEntry(
        name=name,
        task=doc["task"],
        schedule=doc["schedule"],
        args=list(doc.get("args") or []),
        kwargs=dict(doc.get("kwargs") or {}),
        options=dict(doc.get("options") or {}),
        paused=bool(paused),
        run_now=bool(run_now),
        last_run_at=datetime.fromisoformat(last_run_at) if last_run_at else None,
        total_run_count=int(total_run_count or 0),
    )


class ScheduleStore(ABC):
    """The seam: five storage primitives; the user-facing methods are built on them."""

    def __init__(self, name: str) -> None:
        self.name = name  # the app's name: projects sharing a database keep apart

    # -- primitives ----------------------------------------------------------------------------
    @abstractmethod
    def entries(self) -> dict[str, StoredEntry]:
        """Every entry, by name."""

    @abstractmethod
    def _put(self, name: str, definition: str) -> None:
        """Insert the entry, or replace its definition (keeping its runs and flags)."""

    @abstractmethod
    def _delete(self, name: str) -> bool:
        """Remove the entry; False when there was none."""

    @abstractmethod
    def _flag(self, name: str, flag: str, value: bool) -> bool:
        """Set ``paused`` or ``run_now``; False when there is no such entry."""

    @abstractmethod
    def record_run(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        """Beat's record of a run (also clears ``run_now``)."""

    @abstractmethod
    def close(self) -> None:
        """Free connections."""

    # -- the API -------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        task: str,
        schedule: float | Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        relative: bool = False,
    ) -> StoredEntry:
        """Add an entry or change one (its runs are kept): ``schedule`` is seconds, a
        timedelta, ``crontab(...)`` or ``solar(...)``."""
        sched = maybe_schedule(schedule, relative)
        if sched is None:
            raise ValueError(f"schedule entry {name!r}: a schedule is required")
        entry = StoredEntry(
            name=name,
            task=task,
            schedule=schedule_to_doc(sched),
            args=list(args),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
        )
        try:
            definition = entry.definition()
        except TypeError as exc:
            raise ValueError(
                f"schedule entry {name!r}: args, kwargs and options must be JSON ({exc})"
            ) from None
        self._put(name, definition)
        return entry

    def remove(self, name: str) -> None:
        if not self._delete(name):
            raise KeyError(self._unknown(name))

    def pause(self, name: str) -> None:
        if not self._flag(name, "paused", True):
            raise KeyError(self._unknown(name))

    def resume(self, name: str) -> None:
        if not self._flag(name, "paused", False):
            raise KeyError(self._unknown(name))

    def run_now(self, name: str) -> None:
        """Beat sends the entry at its next tick (paused or not), once."""
        if not self._flag(name, "run_now", True):
            raise KeyError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self.entries())) or "none"
        return f"no schedule entry named {name!r} (entries: {known})"


__all__ = ["ScheduleStore", "StoredEntry", "entry_from_row"]
