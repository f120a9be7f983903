"""Schedules of periodic tasks at Celery's import path: ``schedule``, ``crontab``, ``solar``.

Each answers two questions, as Celery defines them:

- ``remaining_estimate(last_run_at)``: the time left until the next run after
  ``last_run_at`` (negative when overdue);
- ``is_due(last_run_at)``: ``schedstate(is_due, next)``, where ``next`` is how many seconds
  to wait before asking again (after a run: until the run after it).

Times are read in the app's time zone (``timezone``; UTC by default). A schedule takes
``nowfun=`` for a controlled clock.
"""

from __future__ import annotations

import re
from bisect import bisect, bisect_left
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, NamedTuple, Union
from zoneinfo import ZoneInfo

from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils import current
from celeriac.utils.time import (
    elapsed,
    ffwd,
    humanize_seconds,
    maybe_make_aware,
    maybe_timedelta,
    remaining,
    weekday,
    yearmonth,
)

if TYPE_CHECKING:
    from celeriac.app.base import Celery

Cronspec = Union[int, str, Iterable[int]]  # noqa: UP007  (a runtime alias on Python 3.10)

#: Days in each month, with February's longest.
DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30}
DAYS_IN_MONTH[12] = 31


class schedstate(NamedTuple):
    """``is_due``'s answer: run now?, and seconds until the next check."""

    is_due: bool
    next: float


class ParseException(ValueError):
    """A crontab field that cannot be read (its message names the field and the value)."""


class BaseSchedule:
    """What every schedule shares: its clock (``nowfun`` or the app's) and time zone."""

    def __init__(self, nowfun: Callable[[], datetime] | None = None, app: Celery | None = None):
        self.nowfun = nowfun
        self._app = app

    @property
    def app(self) -> Celery:
        return self._app or current.get_current_app()

    @app.setter
    def app(self, app: Celery | None) -> None:
        self._app = app

    @property
    def tz(self) -> tzinfo:
        return self.app.timezone

    def now(self) -> datetime:
        return self.nowfun() if self.nowfun is not None else self.app.now()

    def maybe_make_aware(self, dt: datetime) -> datetime:
        return maybe_make_aware(dt, self.tz)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        raise NotImplementedError

    def is_due(self, last_run_at: datetime) -> schedstate:
        raise NotImplementedError

    def _due_then_next(self, last_run_at: datetime) -> schedstate:
        """Due when the estimate is not positive; then ``next`` counts from now."""
        rem = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        if rem == 0:
            return schedstate(True, max(self.remaining_estimate(self.now()).total_seconds(), 0))
        return schedstate(False, rem)


class schedule(BaseSchedule):
    """Every ``run_every`` (seconds or a timedelta); ``relative=True`` rounds each run
    down to the interval's unit (an hourly schedule on the hour)."""

    def __init__(
        self,
        run_every: float | timedelta | None = None,
        relative: bool = False,
        nowfun: Callable[[], datetime] | None = None,
        app: Celery | None = None,
    ) -> None:
        if run_every is None:
            raise ValueError("schedule: run_every is required (seconds or a timedelta)")
        self.run_every = maybe_timedelta(run_every)
        if self.run_every.total_seconds() <= 0:
            raise ValueError(
                f"schedule: run_every must be positive, got {self.run_every.total_seconds()} s"
            )
        self.relative = relative
        super().__init__(nowfun=nowfun, app=app)

    @property
    def seconds(self) -> float:
        return max(self.run_every.total_seconds(), 0)

    @property
    def human_seconds(self) -> str:
        return humanize_seconds(self.seconds)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return remaining(
            self.maybe_make_aware(last_run_at),
            self.run_every,
            self.maybe_make_aware(self.now()),
            self.relative,
        )

    def is_due(self, last_run_at: datetime) -> schedstate:
        rem = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        if rem:
            return schedstate(False, rem)
        if self.relative:
            # The next rounded boundary, which may be nearer than one interval.
            now = self.maybe_make_aware(self.now())
            following = self.remaining_estimate(now).total_seconds()
            return schedstate(True, following if following > 0 else self.seconds)
        return schedstate(True, self.seconds)

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return self.run_every == other.run_every
        return bool(self.run_every == other)

    def __hash__(self) -> int:
        return hash(self.run_every)

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.run_every, self.relative, self.nowfun)


#: The five fields of a crontab: (name, smallest, count of values).
CRON_FIELDS = {
    "minute": (0, 60),
    "hour": (0, 24),
    "day_of_week": (0, 7),
    "day_of_month": (1, 31),
    "month_of_year": (1, 12),
}

_RANGE_STEP = re.compile(r"^(\w+?)-(\w+)/(\w+)?$")
_RANGE = re.compile(r"^(\w+?)-(\w+)$")
_STAR_STEP = re.compile(r"^\*/(\w+)?$")


class crontab_parser:
    """One crontab field as a set of numbers: ``*``, ``n``, ``a-b`` (wrapping past the
    end: ``fri-mon``), ``*/s``, ``a-b/s``, comma-separated; day and month names."""

    ParseException = ParseException

    def __init__(self, max_: int = 60, min_: int = 0, field: str = "value") -> None:
        self.max_ = max_
        self.min_ = min_
        self.field = field

    def _error(self, message: str) -> ValueError:
        return ParseException(f"{self.field}: {message}")

    def parse(self, spec: str) -> set[int]:
        found: set[int] = set()
        for part in spec.split(","):
            if not part.strip():
                raise self._error(f"{spec!r} has an empty part (remove the extra comma)")
            found.update(self._part(part.strip()))
        return found

    def _part(self, part: str) -> list[int]:
        if part == "*":
            return self._star()
        match = _RANGE_STEP.match(part)
        if match:
            return self._range(match[1], match[2])[:: self._step(part, match[3])]
        match = _RANGE.match(part)
        if match:
            return self._range(match[1], match[2])
        match = _STAR_STEP.match(part)
        if match:
            return self._star()[:: self._step(part, match[1])]
        return [self._number(part)]

    def _star(self) -> list[int]:
        return list(range(self.min_, self.min_ + self.max_))

    def _step(self, part: str, step: str | None) -> int:
        if not step or not step.isdigit() or int(step) == 0:
            raise self._error(f"{part!r} needs a positive step after '/' (like '*/15')")
        return int(step)

    def _range(self, first: str, last: str) -> list[int]:
        start, end = self._number(first), self._number(last)
        if end < start:  # wraps past the end: fri-mon
            return [*range(start, self.min_ + self.max_), *range(self.min_, end + 1)]
        return list(range(start, end + 1))

    def _number(self, token: str) -> int:
        if token.startswith("-"):
            raise self._error(f"{token} is negative (use {self.min_}-{self._top})")
        try:
            number = int(token)
        except ValueError:
            try:
                number = yearmonth(token)
            except KeyError:
                try:
                    number = weekday(token)
                except KeyError:
                    raise self._error(
                        f"{token!r} is not a number, day (sun-sat) or month (jan-dec)"
                    ) from None
        if not self.min_ <= number <= self._top:
            raise self._error(f"{number} is out of range {self.min_}-{self._top}")
        return number

    @property
    def _top(self) -> int:
        return self.min_ + self.max_ - 1


def _expand(field: str, spec: Cronspec) -> set[int]:
    low, count = CRON_FIELDS[field]
    if isinstance(spec, bool):
        raise TypeError(f"{field}: {spec!r} is not a crontab value (use an int, str or list)")
    if isinstance(spec, int):
        values = {spec}
    elif isinstance(spec, str):
        values = crontab_parser(count, low, field).parse(spec)
    elif isinstance(spec, Iterable):
        values = set(spec)
    else:
        raise TypeError(
            f"{field}: {spec!r} is not a crontab value (use an int, a str like '*/15' or a "
            "list of ints)"
        )
    for number in values:
        if not isinstance(number, int) or not low <= number < low + count:
            raise ValueError(f"{field}: {number} is out of range {low}-{low + count - 1}")
    if not values:
        raise ValueError(f"{field}: {spec!r} names no value")
    return values


class crontab(BaseSchedule):
    """Cron-like: every field must match (day_of_week AND day_of_month, unlike Unix cron);
    ``day_of_week`` 0 is Sunday. Evaluated on the wall clock of the app's time zone."""

    def __init__(
        self,
        minute: Cronspec = "*",
        hour: Cronspec = "*",
        day_of_week: Cronspec = "*",
        day_of_month: Cronspec = "*",
        month_of_year: Cronspec = "*",
        **kwargs: Any,
    ) -> None:
        self._orig_minute = "*" if minute is None else minute
        self._orig_hour = "*" if hour is None else hour
        self._orig_day_of_week = "*" if day_of_week is None else day_of_week
        self._orig_day_of_month = "*" if day_of_month is None else day_of_month
        self._orig_month_of_year = "*" if month_of_year is None else month_of_year
        self._orig_kwargs = kwargs
        self.minute = _expand("minute", self._orig_minute)
        self.hour = _expand("hour", self._orig_hour)
        self.day_of_week = _expand("day_of_week", self._orig_day_of_week)
        self.day_of_month = _expand("day_of_month", self._orig_day_of_month)
        self.month_of_year = _expand("month_of_year", self._orig_month_of_year)
        if not any(
            day <= DAYS_IN_MONTH[month] for month in self.month_of_year for day in self.day_of_month
        ):
            raise ValueError(
                f"day_of_month: {self._orig_day_of_month!r} never occurs in month_of_year "
                f"{self._orig_month_of_year!r}"
            )
        super().__init__(**kwargs)

    @classmethod
    def from_string(cls, crontab: str) -> crontab:
        """``crontab.from_string('*/15 0-6 * * mon-fri')`` (minute hour dom month dow)."""
        fields = crontab.split()
        if len(fields) != 5:
            raise ValueError(
                f"crontab {crontab!r} has {len(fields)} fields; it needs 5: "
                "minute hour day_of_month month_of_year day_of_week"
            )
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year)

    def __repr__(self) -> str:
        return (
            f"<crontab: {self._orig_minute} {self._orig_hour} {self._orig_day_of_month} "
            f"{self._orig_month_of_year} {self._orig_day_of_week} (m/h/dM/MY/d)>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        fields = (
            self._orig_minute,
            self._orig_hour,
            self._orig_day_of_week,
            self._orig_day_of_month,
            self._orig_month_of_year,
        )
        return self.__class__, fields, self._orig_kwargs

    def __setstate__(self, state: dict[str, Any]) -> None:
        BaseSchedule.__init__(self, **state)
        self._orig_kwargs = dict(state)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return (
                other.month_of_year == self.month_of_year
                and other.day_of_month == self.day_of_month
                and other.day_of_week == self.day_of_week
                and other.hour == self.hour
                and other.minute == self.minute
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(repr(self))

    def remaining_delta(
        self, last_run_at: datetime, tz: tzinfo | str | None = None
    ) -> tuple[datetime, ffwd, datetime]:
        """``(last_run_at, the wall-clock jump to the next run, now)``, both in the
        schedule's zone."""
        zone = ZoneInfo(tz) if isinstance(tz, str) else (tz or self.tz)
        last = self.maybe_make_aware(last_run_at).astimezone(zone)
        now = self.maybe_make_aware(self.now()).astimezone(zone)
        dow = last.isoweekday() % 7  # Sunday is 0
        this_date = (
            last.month in self.month_of_year
            and last.day in self.day_of_month
            and dow in self.day_of_week
        )
        if this_date and last.hour in self.hour and last.minute < max(self.minute):
            minute = min(m for m in self.minute if m > last.minute)
            return last, ffwd(minute=minute, second=0, microsecond=0), now
        minute = min(self.minute)
        if this_date and last.hour < max(self.hour):
            hour = min(h for h in self.hour if h > last.hour)
            return last, ffwd(hour=hour, minute=minute, second=0, microsecond=0), now
        hour = min(self.hour)
        if self._orig_day_of_month == "*" and self._orig_month_of_year == "*":
            day = min([d for d in self.day_of_week if d > dow] or self.day_of_week)
            jump = ffwd(
                weeks=1 if day == dow else 0,
                weekday=(day - 1) % 7,
                hour=hour,
                minute=minute,
                second=0,
                microsecond=0,
            )
            return last, jump, now
        return last, self._next_date(last, hour, minute), now

    def _next_date(self, last: datetime, hour: int, minute: int) -> ffwd:
        """The first allowed date (day of month, month, weekday all matching) whose
        ``hour:minute`` is not before ``last``."""
        days = sorted(self.day_of_month)
        months = sorted(self.month_of_year)
        year = last.year
        if last.month in self.month_of_year:
            dom, moy = bisect(days, last.day), bisect_left(months, last.month)
        else:
            dom, moy = 0, bisect(months, last.month) % len(months)

        def unusable(year: int, moy: int, dom: int) -> bool:
            if dom == len(days):
                return True
            try:
                candidate = datetime(year, months[moy], days[dom], hour, minute)
            except ValueError:
                return True
            return candidate.replace(tzinfo=last.tzinfo) < last

        for _ in range(5000):
            if unusable(year, moy, dom):
                dom, moy = 0, moy + 1
                if moy == len(months):
                    moy, year = 0, year + 1
                continue
            if datetime(year, months[moy], days[dom]).isoweekday() % 7 in self.day_of_week:
                return ffwd(
                    year=year,
                    month=months[moy],
                    day=days[dom],
                    hour=hour,
                    minute=minute,
                    second=0,
                    microsecond=0,
                )
            dom += 1
        raise ValueError(f"{self!r} never fires: no date matches all of its fields")

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        last, jump, now = self.remaining_delta(last_run_at)
        return remaining(last, jump, now)

    def is_due(self, last_run_at: datetime) -> schedstate:
        rem_secs = self.remaining_estimate(last_run_at).total_seconds()
        due = rem_secs <= 0
        deadline = self.app.conf.beat_cron_starting_deadline
        if deadline is not None and rem_secs < 0:
            # Missed by more than the deadline: skip it rather than run it late.
            now = self.maybe_make_aware(self.now())
            since = (
                now.astimezone(timezone.utc) - timedelta(seconds=deadline, microseconds=1)
            ).astimezone(now.tzinfo)
            if self.remaining_estimate(since).total_seconds() > 0:
                return schedstate(
                    False, max(self.remaining_estimate(self.now()).total_seconds(), 0)
                )
        if due:
            return schedstate(True, max(self.remaining_estimate(self.now()).total_seconds(), 0))
        return schedstate(False, rem_secs)


#: Solar events: (ephem horizon, the observer's method, measured at the sun's centre).
SOLAR_EVENTS = {
    "dawn_astronomical": ("-18", "next_rising", True),
    "dawn_nautical": ("-12", "next_rising", True),
    "dawn_civil": ("-6", "next_rising", True),
    "sunrise": ("-0:34", "next_rising", False),
    "solar_noon": ("0", "next_transit", False),
    "sunset": ("-0:34", "next_setting", False),
    "dusk_civil": ("-6", "next_setting", True),
    "dusk_nautical": ("-12", "next_setting", True),
    "dusk_astronomical": ("-18", "next_setting", True),
}


class solar(BaseSchedule):
    """At a solar event (``sunrise``, ``sunset``, ``dawn_civil``, ...) seen from ``lat``,
    ``lon``. Needs the ``ephem`` package (``pip install 'celeriac[solar]'``)."""

    max_search_days = 366

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        if event not in SOLAR_EVENTS:
            raise ValueError(
                f"solar: event {event!r} is not one of {', '.join(sorted(SOLAR_EVENTS))}"
            )
        if not -90 <= lat <= 90:
            raise ValueError(f"solar: latitude {lat} is out of range -90 to 90")
        if not -180 <= lon <= 180:
            raise ValueError(f"solar: longitude {lon} is out of range -180 to 180")
        try:
            import ephem  # lazy: ephem is the optional 'solar' extra
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                "solar schedules need the 'ephem' package: pip install 'celeriac[solar]'"
            ) from exc
        self.ephem: Any = ephem
        self.event = event
        self.lat = lat
        self.lon = lon
        super().__init__(**kwargs)
        horizon, self.method, self.use_center = SOLAR_EVENTS[event]
        cal = ephem.Observer()
        cal.lat = str(lat)
        cal.lon = str(lon)
        cal.elev = 0
        cal.horizon = horizon
        cal.pressure = 0
        self.cal = cal

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.event, self.lat, self.lon)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, solar):
            return (other.event, other.lat, other.lon) == (self.event, self.lat, self.lon)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.event, self.lat, self.lon))

    def _next_event(self, start: Any) -> Any:
        """The event's first time after ``start``; where it does not happen that day (polar
        day or night) the search goes on a day later, up to a year."""
        sun = self.ephem.Sun()
        options = {"use_center": True} if self.use_center else {}
        for _ in range(self.max_search_days):
            try:
                return getattr(self.cal, self.method)(sun, start=start, **options)
            except self.ephem.CircumpolarError:
                start = self.cal.next_antitransit(sun, start=start)
        return start

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        last_utc = self.maybe_make_aware(last_run_at).astimezone(timezone.utc)
        self.cal.date = last_utc.replace(tzinfo=None)
        event = self._next_event(self.ephem.Date(last_utc.replace(tzinfo=None)))
        return elapsed(event.datetime().replace(tzinfo=timezone.utc), self.now())

    def is_due(self, last_run_at: datetime) -> schedstate:
        return self._due_then_next(last_run_at)


def maybe_schedule(
    s: float | timedelta | BaseSchedule | None, relative: bool = False, app: Celery | None = None
) -> BaseSchedule | None:
    """A schedule from seconds, a timedelta or a schedule (given ``app``)."""
    if s is None:
        return None
    if isinstance(s, bool) or not isinstance(s, (int, float, timedelta, BaseSchedule)):
        raise TypeError(
            f"schedule: {s!r} is not a schedule (use seconds, a timedelta, crontab() or solar())"
        )
    if isinstance(s, (int, float, timedelta)):
        return schedule(maybe_timedelta(s), relative, app=app)
    if app is not None:
        s.app = app
    return s


__all__ = [
    "BaseSchedule",
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedstate",
    "schedule",
    "solar",
]
