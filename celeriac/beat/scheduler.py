"""The scheduler: the entries of ``beat_schedule``, which are due, and sending them.

``tick()`` sends every due entry and says how long to sleep: until the nearest next check,
at most ``beat_max_loop_interval``. A run is recorded (last run, count) before its message is
sent, as in Celery, so a crash between the two loses that one run rather than repeating it.
After downtime an overdue entry runs once, not once per missed slot (Celery's rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celeriac.beat.entry import ScheduleEntry, entry_from_config

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.beat.state import StateFile
    from celeriac.beat.store import ScheduleStore, StoredEntry

logger = logging.getLogger("celeriac.beat")

#: The header Celery 5.7's beat adds to every message it sends.
BEAT_HEADER = "celery_beat_task"
#: With a schedule store, beat reads it at least this often (s): edits apply this fast.
STORE_REFRESH = 1.0


class Scheduler:
    """Entries from ``app.conf.beat_schedule`` (which ``add_periodic_task`` fills), their
    runs restored from ``state``; ``clock`` replaces the app's clock (tests)."""

    def __init__(
        self,
        app: Celery,
        state: StateFile | None = None,
        *,
        max_interval: float | None = None,
        clock: Callable[[], datetime] | None = None,
        store: ScheduleStore | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.store = store
        self._built: dict[str, tuple[str, ScheduleEntry]] = {}  # name -> (definition, entry)
        self._paused: set[str] = set()
        self._run_now: set[str] = set()
        self.max_interval = float(
            max_interval if max_interval is not None else app.conf.beat_max_loop_interval
        )
        self.clock = clock
        self.entries: dict[str, ScheduleEntry] = {}

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else self.app.now()

    def setup(self) -> None:
        """Read the schedule (errors name the entry), restore each entry's runs."""
        now = self.now()
        entries = {
            str(name): entry_from_config(self.app, str(name), spec, now, self.clock)
            for name, spec in dict(self.app.conf.beat_schedule).items()
        }
        if self.state is not None:
            runs = self.state.load()
            for name, entry in entries.items():
                if name in runs:
                    entry.last_run_at, entry.total_run_count = runs[name]
            self.state.forget(set(entries))
        if self.store is not None:
            for name, spec in dict(self.app.conf.beat_schedule).items():
                entry = entries[str(name)]
                self.store.add(
                    entry.name,
                    entry.task,
                    entry.schedule,
                    entry.args,
                    entry.kwargs,
                    entry.options,
                    relative=bool(spec.get("relative", False)),
                )
            self.refresh()
            entries = self.entries
        self.entries = entries
        if self.app.conf.beat_scheduler:
            logger.warning(
                "beat: beat_scheduler = %r is not read: celeriac beat has one scheduler (for "
                "entries changed at run time set beat_schedule_store = True)",
                self.app.conf.beat_scheduler,
            )
        for entry in entries.values():
            if entry.task not in self.app.tasks:
                logger.warning(
                    "beat: entry %r sends task %r, which this app does not know; it is sent "
                    "by name (check the spelling, or add its module to include=)",
                    entry.name,
                    entry.task,
                )
            logger.info("beat: %s", entry)

    def refresh(self) -> None:
        """Read the store: entries added, changed, removed, paused or asked to run now."""
        assert self.store is not None
        stored = self.store.entries()
        now = self.now()
        entries: dict[str, ScheduleEntry] = {}
        self._paused = set()
        self._run_now = set()
        for name, item in stored.items():
            try:
                entry = self._build(item)
            except Exception as exc:  # a bad row must not stop the other entries
                logger.error("beat: schedule entry %r cannot be used: %s", name, exc)
                continue
            if item.last_run_at is None:  # new: its first run is one period from now
                entry.last_run_at = now
                self.store.record_run(name, now, 0)
            else:
                entry.last_run_at = item.last_run_at
            entry.total_run_count = item.total_run_count
            entries[name] = entry
            if item.paused:
                self._paused.add(name)
            if item.run_now:
                self._run_now.add(name)
        self.entries = entries

    def _build(self, item: StoredEntry) -> ScheduleEntry:
        definition = item.definition()
        cached = self._built.get(item.name)
        if cached is not None and cached[0] == definition:
            return cached[1]
        spec = {
            "task": item.task,
            "schedule": item.make_schedule(),
            "args": item.args,
            "kwargs": item.kwargs,
            "options": item.options,
        }
        entry = entry_from_config(self.app, item.name, spec, self.now(), self.clock)
        self._built[item.name] = (definition, entry)
        return entry

    def tick(self) -> float:
        """Send what is due; return the seconds to sleep before the next tick."""
        wait = self.max_interval
        paused: set[str] = set()
        if self.store is not None:
            self.refresh()
            wait = min(wait, STORE_REFRESH)
            paused = self._paused
            for name in self._run_now:
                logger.info("beat: %s: run now (asked for)", name)
                self.send(self.entries[name])
        for entry in list(self.entries.values()):
            if entry.name in paused:
                continue
            try:
                due, next_check = entry.is_due()
            except Exception:  # a broken schedule must not stop the others
                logger.exception("beat: cannot tell whether %r is due", entry.name)
                continue
            if due:
                self.send(entry)
            wait = min(wait, next_check)
        return max(wait, 0.0)

    def send(self, entry: ScheduleEntry) -> Any:
        """Record the run, then send the entry's message (Celery's ``apply_async``)."""
        entry.last_run_at = self.now()
        entry.total_run_count += 1
        if self.store is not None:
            self.store.record_run(entry.name, entry.last_run_at, entry.total_run_count)
        elif self.state is not None:
            self.state.save(entry.name, entry.last_run_at, entry.total_run_count)
        options = dict(entry.options)
        options["headers"] = {**(options.get("headers") or {}), BEAT_HEADER: True}
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        task = self.app.tasks.get(entry.task)
        args = list(entry.args)  # a list, as Celery's beat sends them: argsrepr '[1, 1]'
        try:
            if task is not None:
                return task.apply_async(args, entry.kwargs, **options)
            return self.app.send_task(entry.task, args, entry.kwargs, **options)
        except Exception as exc:
            logger.error(
                "Message Error: Couldn't apply scheduled task %s: %s",
                entry.name,
                exc,
                exc_info=True,
            )
            return None


__all__ = ["BEAT_HEADER", "Scheduler"]
