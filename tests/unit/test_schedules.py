"""celeriac.schedules with a controlled clock: each schedule's is_due / remaining_estimate,
checked against real Celery's answers on the same inputs, the crontab syntax and its errors,
and a daily 02:30 in Europe/Oslo across both daylight-saving changes."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import celery
import celery.schedules as cs
import pytest

from celeriac import Celery
from celeriac.schedules import ParseException, crontab, maybe_schedule, schedule, solar
from tests.vectors import load_vector

UTC = timezone.utc
OSLO = ZoneInfo("Europe/Oslo")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def oslo_app() -> Iterator[Celery]:
    app = Celery("t", broker="memory://sched", set_as_current=False, timezone="Europe/Oslo")
    yield app
    app.close()


@pytest.fixture
def utc_app() -> Iterator[Celery]:
    app = Celery("t", broker="memory://sched", set_as_current=False)
    yield app
    app.close()


def _celery_app(tz: str | None) -> celery.Celery:
    app = celery.Celery("ref", set_as_current=False)
    app.conf.timezone = tz
    return app


def test_interval_is_due_and_remaining() -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC))
    s = schedule(timedelta(seconds=10), nowfun=clock)
    last = clock.now
    clock.now = last + timedelta(seconds=4)
    assert s.remaining_estimate(last) == timedelta(seconds=6)
    assert s.is_due(last) == (False, 6.0)
    clock.now = last + timedelta(seconds=10)
    assert s.is_due(last) == (True, 10.0)
    clock.now = last + timedelta(hours=5)  # long overdue: one run, then a full interval
    assert s.is_due(last) == (True, 10.0)
    assert repr(schedule(2.0)) == "<freq: 2.00 seconds>"


def test_maybe_schedule_reads_numbers_and_timedeltas() -> None:
    assert maybe_schedule(30) == schedule(30)
    assert maybe_schedule(timedelta(minutes=1)) == schedule(60)
    with pytest.raises(TypeError, match="not a schedule"):
        maybe_schedule("every minute")  # type: ignore[arg-type]


def test_relative_interval_rounds_to_its_unit() -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 20, 0, tzinfo=UTC))
    s = schedule(timedelta(hours=1), relative=True, nowfun=clock)
    last = datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
    assert s.remaining_estimate(last) == timedelta(minutes=40)  # 13:00, not 13:10


def test_vector_reprs() -> None:
    vector = load_vector("beat_message_and_schedule")[
        "shelve_contents (python reprs; file format is dbm.dumb + pickle)"
    ]
    entries = vector["entries"]
    assert repr(schedule(2.0)) == entries["add-every-2s"]["schedule"]
    cron = crontab(minute="*/15", hour="0-6", day_of_week="mon-fri")
    assert repr(cron) == entries["cron-nightly"]["schedule"]


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("minute", "*/15", {0, 15, 30, 45}),
        ("minute", "1,13,30-45/5,58-59", {1, 13, 30, 35, 40, 45, 58, 59}),
        ("hour", "0,8-17/2", {0, 8, 10, 12, 14, 16}),
        ("day_of_week", "fri-mon", {5, 6, 0, 1}),
        ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "sunday,Saturday", {0, 6}),
        ("day_of_month", "*/10", {1, 11, 21, 31}),
        ("month_of_year", "jan-mar,dec", {1, 2, 3, 12}),
        ("month_of_year", "2-12/2", {2, 4, 6, 8, 10, 12}),
        ("hour", [1, 2, 3], {1, 2, 3}),
        ("minute", 7, {7}),
    ],
)
def test_crontab_syntax_matches_celery(field: str, spec: object, expected: set[int]) -> None:
    ours = getattr(crontab(**{field: spec}), field)
    theirs = getattr(cs.crontab(**{field: spec}), field)
    assert ours == theirs == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minute": "61"}, "minute: 61 is out of range 0-59"),
        ({"minute": 61}, "minute: 61 is out of range 0-59"),
        ({"hour": "1-24"}, "hour: 24 is out of range 0-23"),
        ({"day_of_week": 7}, "day_of_week: 7 is out of range 0-6"),
        ({"day_of_month": "0"}, "day_of_month: 0 is out of range 1-31"),
        ({"month_of_year": "13"}, "month_of_year: 13 is out of range 1-12"),
        ({"minute": "*/0"}, "minute: '*/0' needs a positive step"),
        ({"minute": "*/"}, "minute: '*/' needs a positive step"),
        ({"hour": "1,,2"}, "hour: '1,,2' has an empty part"),
        ({"day_of_week": "funday"}, "day_of_week: 'funday' is not a number, day"),
        ({"minute": "-5"}, "minute: -5 is negative"),
        ({"day_of_month": 30, "month_of_year": 2}, "day_of_month: 30 never occurs"),
    ],
)
def test_crontab_errors_name_the_field_and_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        crontab(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_parse_exception_is_celerys_and_a_value_error() -> None:
    with pytest.raises(ParseException):
        crontab(minute="*/x")


def test_from_string_and_pickle() -> None:
    cron = crontab.from_string("*/15 0-6 1 * mon-fri")
    assert cron == crontab(minute="*/15", hour="0-6", day_of_month="1", day_of_week="mon-fri")
    assert pickle.loads(pickle.dumps(cron)) == cron
    with pytest.raises(ValueError, match="needs 5"):
        crontab.from_string("* * *")


def test_day_of_week_and_day_of_month_both_must_match(utc_app: Celery) -> None:
    clock = Clock(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    cron = crontab(0, 0, day_of_week="mon", day_of_month="1", nowfun=clock, app=utc_app)
    nxt = clock.now + cron.remaining_estimate(clock.now)
    assert (nxt.day, nxt.weekday(), nxt.hour, nxt.minute) == (1, 0, 0, 0)
    assert nxt.date() == datetime(2026, 6, 1).date()  # the first Monday the 1st after Jan 1


_SPECS = [
    {"minute": "*/15", "hour": "0-6", "day_of_week": "mon-fri"},
    {"minute": 30, "hour": 2},
    {"minute": 0, "hour": "*/3"},
    {"minute": "5,35", "hour": "9-17", "day_of_week": "sat,sun"},
    {"minute": 0, "hour": 0, "day_of_month": "1,15"},
    {"minute": 45, "hour": 23, "day_of_month": 31},
    {"minute": 0, "hour": 12, "day_of_month": "1-7", "day_of_week": "tue"},
    {"minute": 10, "hour": 4, "month_of_year": "feb,oct", "day_of_month": 29},
]
_LASTS = [
    datetime(2026, 3, 28, 23, 59, 10, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 31, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 50, tzinfo=UTC),
    datetime(2028, 2, 28, 4, 10, tzinfo=UTC),
]


@pytest.mark.parametrize("tz", [None, "Europe/Oslo", "America/New_York"])
@pytest.mark.parametrize("spec", _SPECS, ids=[str(i) for i in range(len(_SPECS))])
def test_crontab_agrees_with_celery(tz: str | None, spec: dict[str, object]) -> None:
    app = Celery("t", broker="memory://sched", set_as_current=False, timezone=tz)
    ref = _celery_app(tz)
    try:
        for last, later in itertools.product(_LASTS, (0, 59, 3600, 86400 * 3)):
            clock = Clock(last + timedelta(seconds=later))
            ours = crontab(**spec, nowfun=clock, app=app)  # type: ignore[arg-type]
            theirs = cs.crontab(**spec, nowfun=clock, app=ref)
            assert ours.remaining_estimate(last) == theirs.remaining_estimate(last), (last, later)
            assert tuple(ours.is_due(last)) == tuple(theirs.is_due(last)), (last, later)
    finally:
        app.close()


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("every", [2.0, 90.0, 3600.0])
def test_interval_agrees_with_celery(every: float, relative: bool, oslo_app: Celery) -> None:
    ref = _celery_app("Europe/Oslo")
    for last, later in itertools.product(_LASTS, (0.5, 1, 59, 3599, 3601)):
        clock = Clock(last + timedelta(seconds=later))
        ours = schedule(every, relative=relative, nowfun=clock, app=oslo_app)
        theirs = cs.schedule(every, relative=relative, nowfun=clock, app=ref)
        assert ours.remaining_estimate(last) == theirs.remaining_estimate(last)
        assert tuple(ours.is_due(last)) == tuple(theirs.is_due(last))


def _runs(cron: crontab, clock: Clock, start: datetime, days: int) -> list[datetime]:
    """Drive ``cron`` as beat does, one check a minute: run when due, remember the run."""
    last = start
    runs = []
    clock.now = start.astimezone(UTC)  # real minutes pass, not wall-clock ones
    while clock.now < start.astimezone(UTC) + timedelta(days=days):
        due, _next = cron.is_due(last)
        if due:
            runs.append(clock.now.astimezone(OSLO))
            last = clock.now
        clock.now += timedelta(minutes=1)
    return runs


@pytest.mark.parametrize(
    "start",
    [datetime(2026, 3, 26, 12, tzinfo=OSLO), datetime(2026, 10, 22, 12, tzinfo=OSLO)],
    ids=["spring-forward", "fall-back"],
)
def test_daily_0230_in_oslo_runs_once_a_day_across_dst(start: datetime, oslo_app: Celery) -> None:
    clock = Clock(start)
    cron = crontab(minute=30, hour=2, nowfun=clock, app=oslo_app)
    runs = _runs(cron, clock, start, days=6)
    days = [r.date() for r in runs]
    assert days == [(start + timedelta(days=n)).date() for n in range(1, 7)]  # once each day
    for run in runs:
        if run.date() == datetime(2026, 3, 29).date():
            assert (run.hour, run.minute) == (3, 30)  # 02:30 does not exist: an hour later
        else:
            assert (run.hour, run.minute) == (2, 30)
    # On the night 02:30 happens twice, it runs at the first one only.
    fall = [r for r in runs if r.date() == datetime(2026, 10, 25).date()]
    assert all(r.fold == 0 and r.utcoffset() == timedelta(hours=2) for r in fall)


def test_hourly_crossing_fall_back_matches_celery(oslo_app: Celery) -> None:
    ref = _celery_app("Europe/Oslo")
    start = datetime(2026, 10, 24, 22, 5, tzinfo=UTC)
    clock = Clock(start)
    ours = crontab(minute=0, nowfun=clock, app=oslo_app)
    theirs = cs.crontab(minute=0, nowfun=clock, app=ref)
    last_o = last_t = start
    for _ in range(6 * 60):
        due_o, due_t = ours.is_due(last_o), theirs.is_due(last_t)
        assert tuple(due_o) == tuple(due_t), clock.now
        if due_o.is_due:
            last_o = last_t = clock.now
        clock.now += timedelta(minutes=1)


def test_cron_starting_deadline_skips_a_long_missed_run(utc_app: Celery) -> None:
    utc_app.conf.beat_cron_starting_deadline = 120
    clock = Clock(datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    cron = crontab(minute=0, nowfun=clock, app=utc_app)
    assert not cron.is_due(datetime(2026, 1, 1, 10, 0, tzinfo=UTC)).is_due
    clock.now = datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    assert cron.is_due(datetime(2026, 1, 1, 11, 0, tzinfo=UTC)).is_due


@pytest.mark.parametrize("event", ["sunrise", "sunset", "solar_noon", "dawn_civil"])
def test_solar_agrees_with_celery(event: str, utc_app: Celery) -> None:
    ref = _celery_app(None)
    last = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    for later in (0, 3600 * 5, 3600 * 30):
        clock = Clock(last + timedelta(seconds=later))
        ours = solar(event, 59.91, 10.75, nowfun=clock, app=utc_app)
        theirs = cs.solar(event, 59.91, 10.75, nowfun=clock, app=ref)
        assert ours.remaining_estimate(last) == theirs.remaining_estimate(last)
        assert tuple(ours.is_due(last)) == tuple(theirs.is_due(last))


def test_solar_in_the_polar_night_waits_for_the_sun(utc_app: Celery) -> None:
    clock = Clock(datetime(2026, 12, 20, 12, tzinfo=UTC))
    tromso_far_north = solar("sunrise", 78.2, 15.6, nowfun=clock, app=utc_app)
    rem = tromso_far_north.remaining_estimate(clock.now)
    assert timedelta(days=40) < rem < timedelta(days=70)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("noon", 0, 0), "solar: event 'noon' is not one of"),
        (("sunrise", 91, 0), "solar: latitude 91 is out of range"),
        (("sunrise", 0, -181), "solar: longitude -181 is out of range"),
    ],
)
def test_solar_errors(args: tuple[str, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        solar(*args)


def test_schedules_are_celerys_names() -> None:
    import celeriac.schedules as ours

    names: Callable[[object], set[str]] = lambda m: set(getattr(m, "__all__", ()))  # noqa: E731
    assert names(cs) <= names(ours)


def test_enable_utc_false_reads_schedules_in_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Oslo")
    app = Celery("t", broker="memory://sched", set_as_current=False, enable_utc=False)
    try:
        assert app.timezone == OSLO
        clock = Clock(datetime(2026, 7, 1, 0, 10, tzinfo=UTC))  # 02:10 in Oslo (summer)
        cron = crontab(minute=30, hour=2, nowfun=clock, app=app)
        assert cron.remaining_estimate(clock.now) == timedelta(minutes=20)
        app.conf.enable_utc = True
        assert app.timezone == UTC
    finally:
        app.close()
