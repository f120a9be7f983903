"""``celeriac schedule list|add|remove|pause|resume|run-now`` on the embedded SQLite default,
and its one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from celeriac.beat.store_backends import SQLiteScheduleStore
from celeriac.cli.main import celeriac
from tests.cli_project import cli_project

PROJ = """
from celeriac import Celery

app = Celery("schedproj")
app.conf.beat_schedule_store = True
"""
NOSTORE = "from celeriac import Celery\napp = Celery('nostore')\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with cli_project(tmp_path, monkeypatch, {"schedproj.py": PROJ, "nostore.py": NOSTORE}) as d:
        yield d


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(celeriac, ["-A", "schedproj", "schedule", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_schedule_commands_change_the_store(project: Path) -> None:
    assert _run("list") == "No schedule entries.\n"
    assert _run("add", "every-30", "proj.add", "--every", "30", "-a", "[1, 2]", "--queue", "q")
    assert "crontab" in _run("add", "nightly", "proj.report", "--crontab", "30 2 * * mon-fri")
    assert "solar" in _run("add", "dusk", "proj.lights", "--solar", "dusk_civil,59.9,10.7")
    _run("pause", "nightly")
    _run("run-now", "dusk")
    lines = _run("list").splitlines()
    assert lines[0].startswith("dusk  proj.lights()  <solar: dusk_civil")
    assert (
        "every-30  proj.add(1, 2)  <freq: 30.00 seconds>  active  last run never  runs 0"
        in (lines[1])
    )
    assert "nightly" in lines[2] and "paused" in lines[2]
    _run("resume", "nightly")
    _run("remove", "every-30")
    store = SQLiteScheduleStore(str(project / "celeriac-broker.sqlite"), "schedproj")
    entries = store.entries()
    store.close()
    assert set(entries) == {"nightly", "dusk"}
    assert not entries["nightly"].paused and entries["dusk"].run_now


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "nope"), "no schedule entry named 'nope' (entries: none)"),
        (("add", "x", "t", "--crontab", "61 * * * *"), "minute: 61 is out of range 0-59"),
        (("add", "x", "t"), "Give exactly one of --every, --crontab, --solar."),
        (("add", "x", "t", "--every", "5", "-a", "{"), "--args must be JSON"),
    ],
)
def test_schedule_errors_are_one_line(project: Path, args: tuple[str, ...], message: str) -> None:
    result = CliRunner().invoke(celeriac, ["-A", "schedproj", "schedule", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_without_a_store_it_says_how_to_get_one(project: Path) -> None:
    result = CliRunner().invoke(celeriac, ["-A", "nostore", "schedule", "list"])
    assert result.exit_code == 2
    assert "set beat_schedule_store = True" in result.output


def test_beat_refuses_a_scheduler_class(project: Path) -> None:
    result = CliRunner().invoke(
        celeriac, ["-A", "schedproj", "beat", "-S", "django_celery_beat.schedulers:X"]
    )
    assert result.exit_code == 2
    assert "celeriac beat has one scheduler" in result.output
    assert "beat_schedule_store = True" in result.output
