"""Schedules as JSON documents, so a schedule store keeps them in any database and the
command line writes them: ``{"every": 30.0}``, ``{"crontab": "*/15 0-6 * * mon-fri"}``,
``{"solar": "sunset", "lat": 59.9, "lon": 10.7}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.schedules import BaseSchedule, crontab, schedule, solar


def _field(value: Any) -> str:
    if isinstance(value, str):
        return value.replace(" ", "")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in sorted(value))
    return str(value)


def schedule_to_doc(sched: BaseSchedule) -> dict[str, Any]:
    """A schedule as a JSON-able dict (ValueError for a schedule class it does not know)."""
    if isinstance(sched, schedule):
        return {"every": sched.run_every.total_seconds(), "relative": sched.relative}
    if isinstance(sched, crontab):
        fields = (
            sched._orig_minute,
            sched._orig_hour,
            sched._orig_day_of_month,
            sched._orig_month_of_year,
            sched._orig_day_of_week,
        )
        return {"crontab": " ".join(_field(f) for f in fields)}
    if isinstance(sched, solar):
        return {"solar": sched.event, "lat": sched.lat, "lon": sched.lon}
    raise ValueError(f"{sched!r} cannot be kept in a schedule store (use schedule, crontab, solar)")


def schedule_from_doc(doc: Mapping[str, Any]) -> BaseSchedule:
    """The schedule a :func:`schedule_to_doc` dict describes."""
    if "every" in doc:
        return schedule(float(doc["every"]), relative=bool(doc.get("relative", False)))
    if "crontab" in doc:
        return crontab.from_string(str(doc["crontab"]))
    if "solar" in doc:
        return solar(str(doc["solar"]), float(doc["lat"]), float(doc["lon"]))
    raise ValueError(f"not a schedule: {dict(doc)!r} (needs 'every', 'crontab' or 'solar')")


__all__ = ["schedule_from_doc", "schedule_to_doc"]
