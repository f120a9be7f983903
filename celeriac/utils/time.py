"""Time arithmetic for schedules, as Celery's ``celery.utils.time`` does it.

Differences of aware datetimes are taken in UTC (real elapsed time), while a crontab's next
run is found on the wall clock of the schedule's time zone (:class:`ffwd`), so a daily 02:30
stays at 02:30 local time across daylight-saving changes.
"""

from __future__ import annotations

import os
from calendar import monthrange
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Day names as Celery reads them in a crontab (``sun`` is 0); the first three letters count.
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
#: Month names (``jan`` is 1); the first three letters count.
MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def weekday(name: str) -> int:
    """``'mon'`` / ``'Monday'`` -> 1 (Sunday is 0). Raises KeyError for other words."""
    return WEEKDAYS[name.lower()[:3]]


def yearmonth(name: str) -> int:
    """``'jan'`` / ``'January'`` -> 1. Raises KeyError for other words."""
    return MONTHS[name.lower()[:3]]


def local_zone() -> tzinfo:
    """The system's time zone, with its daylight-saving rules: ``TZ``, else
    ``/etc/localtime``, else today's fixed offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or timezone.utc


def maybe_timedelta(delta: float | timedelta) -> timedelta:
    """Seconds as a timedelta (a timedelta as it is)."""
    if isinstance(delta, timedelta):
        return delta
    return timedelta(seconds=delta)


def maybe_make_aware(dt: datetime, tz: tzinfo | None = None) -> datetime:
    """An aware ``dt`` as it is; a naive one read as UTC, then shown in ``tz``."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=timezone.utc)
        if tz is not None:
            dt = dt.astimezone(tz)
    return dt


def elapsed(end: datetime, start: datetime) -> timedelta:
    """Real time from ``start`` to ``end`` (naive values read as UTC)."""
    return maybe_make_aware(end).astimezone(timezone.utc) - maybe_make_aware(start).astimezone(
        timezone.utc
    )


def delta_resolution(dt: datetime, delta: timedelta) -> datetime:
    """``dt`` rounded down to the unit of ``delta``: days, hours or minutes (else as it is)."""
    seconds = max(delta.total_seconds(), 0)
    if seconds >= 86400:
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if seconds >= 3600:
        return dt.replace(minute=0, second=0, microsecond=0)
    if seconds >= 60:
        return dt.replace(second=0, microsecond=0)
    return dt


class ffwd:
    """A wall-clock jump: set the given fields, then move to ``weekday`` (0 = Monday, as
    :meth:`datetime.weekday`) and add ``weeks``. Only addition to a datetime is defined."""

    def __init__(
        self,
        *,
        year: int | None = None,
        month: int | None = None,
        weeks: int = 0,
        weekday: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        minute: int | None = None,
        second: int | None = None,
        microsecond: int | None = None,
    ) -> None:
        self.year = year
        self.month = month
        self.weeks = weeks
        self.weekday = weekday
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.microsecond = microsecond

    def __radd__(self, other: datetime) -> datetime:
        year = self.year or other.year
        month = self.month or other.month
        day = min(monthrange(year, month)[1], self.day or other.day)
        moved = other.replace(
            year=year,
            month=month,
            day=day,
            hour=other.hour if self.hour is None else self.hour,
            minute=other.minute if self.minute is None else self.minute,
            second=other.second if self.second is None else self.second,
            microsecond=other.microsecond if self.microsecond is None else self.microsecond,
        )
        if self.weekday is not None:
            moved += timedelta(days=(7 - moved.weekday() + self.weekday) % 7)
        return moved + timedelta(days=self.weeks * 7)

    def __repr__(self) -> str:
        fields = ("year", "month", "weeks", "weekday", "day", "hour", "minute", "second")
        shown = ", ".join(
            f"{name}={getattr(self, name)}" for name in fields if getattr(self, name) is not None
        )
        return f"ffwd({shown})"


def remaining(
    start: datetime, ends_in: timedelta | ffwd, now: datetime, relative: bool = False
) -> timedelta:
    """Real time left from ``now`` until ``start + ends_in``.

    A timedelta is added as elapsed time; an :class:`ffwd` on the wall clock of ``start``'s
    zone. With ``relative`` the deadline is rounded down to the interval's unit (an hourly
    schedule runs on the hour), never to ``start`` itself or before it.
    """
    if isinstance(ends_in, timedelta):
        if relative and ends_in >= timedelta(days=1):
            end = start + ends_in  # calendar days on the local clock
        else:
            end = (start.astimezone(timezone.utc) + ends_in).astimezone(start.tzinfo)
        if relative:
            rounded = delta_resolution(end, ends_in).replace(microsecond=0)
            if rounded > start:
                end = rounded
    else:
        end = start + ends_in
    return elapsed(end, now)


def humanize_seconds(secs: float, prefix: str = "", sep: str = "", now: str = "now") -> str:
    """``2.0`` -> ``'2.00 seconds'``, ``3600`` -> ``'1.00 hour'``, as Celery shows a freq."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            amount = secs / size
            return f"{prefix}{sep}{amount:.2f} {unit if amount == 1 else unit + 's'}"
    if secs > 0:
        return f"{prefix}{sep}{secs:.2f} {'second' if secs == 1 else 'seconds'}"
    return now


__all__ = [
    "MONTHS",
    "WEEKDAYS",
    "delta_resolution",
    "elapsed",
    "ffwd",
    "humanize_seconds",
    "local_zone",
    "maybe_make_aware",
    "maybe_timedelta",
    "remaining",
    "weekday",
    "yearmonth",
]
