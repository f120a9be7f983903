"""The beat scheduler with a controlled clock: entries from beat_schedule and
add_periodic_task, what it sends (the vector's message), the loop's sleep, the state file
across restarts (no repeat, no skip, one catch-up run) and its errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from celeriac import Celery
from celeriac.beat.scheduler import Scheduler
from celeriac.beat.state import StateFile
from celeriac.beat.store_backends import MemoryScheduleStore
from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import crontab
from tests.vectors import load_vector

UTC = timezone.utc
T0 = datetime(2026, 11, 24, 3, 15, 11, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def _sent(app: Celery, queue: str = "celery") -> list[Any]:
    with app.connection() as conn:
        deliveries = conn.get([queue], max_messages=100, timeout=None)
        if deliveries:
            conn.ack(deliveries)
        return [d.message for d in deliveries]


def _scheduler(
    app: Celery, clock: Clock, state: StateFile | None = None, max_interval: float = 1.0
) -> Scheduler:
    scheduler = Scheduler(app, state, max_interval=max_interval, clock=clock)
    app.finalize()
    scheduler.setup()
    return scheduler


def test_interval_entry_runs_every_period_not_at_start(memory_app: Celery, clock: Clock) -> None:
    memory_app.conf.beat_schedule = {"every-2s": {"task": "tasks.add", "schedule": 2.0}}
    scheduler = _scheduler(memory_app, clock)
    assert scheduler.tick() == 1.0  # not due: sleep at most max_interval
    clock.advance(1.5)
    assert scheduler.tick() == pytest.approx(0.5)
    assert _sent(memory_app) == []
    clock.advance(0.5)
    scheduler.tick()
    assert len(_sent(memory_app)) == 1
    assert scheduler.entries["every-2s"].total_run_count == 1


def test_message_is_the_vectors(memory_app: Celery, clock: Clock) -> None:
    vector = load_vector("beat_message_and_schedule")["message"]["envelope"]
    memory_app.conf.beat_schedule = {
        "add-every-2s": {
            "task": "tasks.add",
            "schedule": 2.0,
            "args": (1, 1),
            "options": {"priority": 3, "expires": 30},
        }
    }
    scheduler = _scheduler(memory_app, clock)
    clock.advance(2)
    scheduler.tick()
    (message,) = _sent(memory_app)
    assert message.headers["celery_beat_task"] is True
    assert set(message.headers) == set(vector["headers"])
    for key in ("lang", "task", "argsrepr", "kwargsrepr", "retries", "timelimit", "eta"):
        assert message.headers[key] == vector["headers"][key], key
    assert message.properties["priority"] == 3
    assert message.properties["expiration"] == "30000"
    expires = datetime.fromisoformat(message.headers["expires"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 30) < 5
    assert (
        json.loads(message.body) == load_vector("beat_message_and_schedule")["message"]["body_json"]
    )


def test_add_periodic_task_in_on_after_configure(memory_app: Celery, clock: Clock) -> None:
    @memory_app.task(name="tasks.echo")
    def echo(x: int) -> int:
        return x

    seen: list[Any] = []

    @memory_app.on_after_configure.connect
    def setup(sender: Celery, **kwargs: Any) -> None:
        seen.append(kwargs.get("source"))
        sender.add_periodic_task(10.0, echo.s(1), name="echo every 10")
        sender.add_periodic_task(crontab(minute=0), echo.s(2), expires=5)

    finalized: list[Celery] = []
    memory_app.on_after_finalize.connect(lambda sender, **kw: finalized.append(sender), weak=False)
    scheduler = _scheduler(memory_app, clock)
    assert seen == [memory_app.conf]
    assert finalized == [memory_app]
    assert set(scheduler.entries) == {"echo every 10", "tasks.echo(2)"}
    assert scheduler.entries["tasks.echo(2)"].options == {"expires": 5}
    clock.advance(10)
    scheduler.tick()
    (message,) = _sent(memory_app)
    assert message.headers["task"] == "tasks.echo"


def test_add_periodic_task_after_configure_goes_straight_in(memory_app: Celery) -> None:
    memory_app.finalize()
    name = memory_app.add_periodic_task(5, "tasks.add", args=(1, 2))
    entry = memory_app.conf.beat_schedule[name]
    assert (entry["task"], entry["args"], entry["schedule"]) == ("tasks.add", (1, 2), 5)


def test_state_file_keeps_runs_across_restart(
    memory_app: Celery, clock: Clock, tmp_path: Path
) -> None:
    memory_app.conf.beat_schedule = {"every-10s": {"task": "tasks.add", "schedule": 10.0}}
    path = tmp_path / "beat-schedule"
    state = StateFile(path, "UTC")
    scheduler = _scheduler(memory_app, clock, state)
    for _ in range(3):
        clock.advance(10)
        scheduler.tick()
    state.close()
    assert len(_sent(memory_app)) == 3

    # Restarted 4 s after the last run: not due again (no repeat), due 6 s later (no skip).
    clock.advance(4)
    state = StateFile(path, "UTC")
    scheduler = _scheduler(memory_app, clock, state)
    assert scheduler.entries["every-10s"].total_run_count == 3
    assert scheduler.tick() == pytest.approx(1.0)
    assert _sent(memory_app) == []
    clock.advance(6)
    scheduler.tick()
    assert len(_sent(memory_app)) == 1
    state.close()

    # Down for an hour: one catch-up run at start, then the normal period again.
    clock.advance(3600)
    state = StateFile(path, "UTC")
    scheduler = _scheduler(memory_app, clock, state)
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    assert len(_sent(memory_app)) == 1
    assert scheduler.entries["every-10s"].total_run_count == 5
    state.close()


def test_daily_0230_oslo_through_the_scheduler_across_dst(
    memory_app: Celery, tmp_path: Path
) -> None:
    memory_app.conf.timezone = "Europe/Oslo"
    memory_app.conf.beat_schedule = {
        "nightly": {"task": "tasks.add", "schedule": crontab(minute=30, hour=2)}
    }
    oslo = ZoneInfo("Europe/Oslo")
    for start in (datetime(2026, 3, 27, 12, tzinfo=oslo), datetime(2026, 10, 23, 12, tzinfo=oslo)):
        clock = Clock(start.astimezone(UTC))
        state = StateFile(tmp_path / f"s-{start.month}", "Europe/Oslo")
        scheduler = _scheduler(memory_app, clock, state, max_interval=300)
        runs = []
        end = clock.now + timedelta(days=4)
        while clock.now < end:
            before = scheduler.entries["nightly"].total_run_count
            wait = scheduler.tick()
            if scheduler.entries["nightly"].total_run_count > before:
                runs.append(clock.now.astimezone(oslo))
            clock.advance(min(wait, 60) or 1)  # sleep as beat would, checking each minute
        state.close()
        assert len(_sent(memory_app)) == 4
        assert [r.date() for r in runs] == [(start + timedelta(days=n)).date() for n in range(1, 5)]
        assert [(r.hour, r.minute) for r in runs if r.date() != datetime(2026, 3, 29).date()] == [
            (2, 30)
        ] * (3 if start.month == 3 else 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": 5}, "beat_schedule['bad'] needs 'task'"),
        ({"task": "t"}, "beat_schedule['bad'] needs 'schedule'"),
        (
            {"task": "t", "schedule": 5, "kwarg": {}},
            "beat_schedule['bad'] has unknown key(s) 'kwarg'",
        ),
        ({"task": "t", "schedule": "5 minutes"}, "beat_schedule['bad']: schedule: '5 minutes'"),
        ({"task": "t", "schedule": 5, "args": 3}, "beat_schedule['bad']: 'args' must be a list"),
    ],
)
def test_bad_entries_are_named(memory_app: Celery, spec: dict[str, Any], message: str) -> None:
    memory_app.conf.beat_schedule = {"bad": spec}
    with pytest.raises(ImproperlyConfigured) as info:
        Scheduler(memory_app).setup()
    assert str(info.value).startswith(message)


def test_unknown_task_is_reported_at_start(
    memory_app: Celery, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    memory_app.conf.beat_schedule = {"typo": {"task": "tasks.ad", "schedule": 5}}
    _scheduler(memory_app, clock)
    assert "entry 'typo' sends task 'tasks.ad', which this app does not know" in caplog.text


def test_state_file_errors_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "beat-schedule"
    held = StateFile(path, "UTC")
    with pytest.raises(ImproperlyConfigured, match="is locked by another beat") as info:
        StateFile(path, "UTC")
    assert str(path) in str(info.value) and "-s" in str(info.value)
    held.close()
    StateFile(path, "UTC").close()  # released

    garbage = tmp_path / "celerybeat-schedule"
    garbage.write_bytes(b"\x00not a database" * 100)
    with pytest.raises(ImproperlyConfigured, match="not a celeriac schedule file"):
        StateFile(garbage, "UTC")
    with pytest.raises(ImproperlyConfigured, match="cannot be opened"):
        StateFile(tmp_path / "missing-dir" / "s", "UTC")


def test_a_changed_time_zone_forgets_the_runs(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "s", "UTC")
    state.save("x", T0, 4)
    state.close()
    state = StateFile(tmp_path / "s", "Europe/Oslo")
    assert state.load() == {}
    state.close()


def test_schedule_store_edits_apply_without_restart(memory_app: Celery, clock: Clock) -> None:
    memory_app.conf.beat_schedule = {"from-config": {"task": "tasks.add", "schedule": 10.0}}
    store = MemoryScheduleStore(f"sched-{id(clock)}", "t")
    scheduler = Scheduler(memory_app, None, max_interval=300, clock=clock, store=store)
    memory_app.finalize()
    scheduler.setup()
    assert set(store.entries()) == {"from-config"}  # beat_schedule loaded into the store
    assert scheduler.tick() == 1.0  # a store is read at least every second

    store.add("added-later", "tasks.mul", 5, args=(2, 3))
    scheduler.tick()  # seen: its first run is one period from now
    clock.advance(5)
    scheduler.tick()
    assert [m.headers["task"] for m in _sent(memory_app)] == ["tasks.mul"]

    store.pause("added-later")
    clock.advance(5)
    scheduler.tick()
    assert [m.headers["task"] for m in _sent(memory_app)] == ["tasks.add"]  # 10 s: config's

    store.run_now("added-later")  # paused, but asked for: once
    scheduler.tick()
    scheduler.tick()
    assert [m.headers["task"] for m in _sent(memory_app)] == ["tasks.mul"]

    store.resume("added-later")
    store.remove("from-config")
    clock.advance(5)
    scheduler.tick()
    assert [m.headers["task"] for m in _sent(memory_app)] == ["tasks.mul"]
    assert store.entries()["added-later"].total_run_count == 3
