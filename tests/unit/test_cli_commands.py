"""``call``, ``result`` and ``purge`` against the embedded SQLite broker in a tmp directory."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli.main import celeriac
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall
from tests.cli_project import cli_project

CMDPROJ = """
from celeriac import Celery

app = Celery("cmdproj")

@app.task
def add(x, y):
    return x + y
"""

NORES = "from celeriac import Celery\napp = Celery('nores', broker='memory://cli-nores')\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with ``cmdproj`` (embedded SQLite) and ``nores`` (no results)."""
    with cli_project(
        tmp_path, monkeypatch, {"cmdproj.py": CMDPROJ, "nores.py": NORES}
    ) as directory:
        yield directory


def _app() -> Celery:
    app: Celery = sys.modules["cmdproj"].app
    return app


def _take(queue: str = "celery") -> list[TaskCall]:
    with _app().connection() as conn:
        deliveries = conn.get([queue], max_messages=100)
        conn.ack(deliveries)
    return [task_v2.decode(d.message, accept=["json"]) for d in deliveries]


def _call(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(celeriac, ["-A", "cmdproj", "call", *args])
    assert result.exit_code == 0, result.output
    task_id = result.stdout.strip()
    uuid.UUID(task_id)
    return task_id


# -- call -------------------------------------------------------------------------------------


def test_call_sends_and_prints_the_id(runner: CliRunner, project: Path) -> None:
    task_id = _call(runner, "cmdproj.add", "--args=[2, 3]", '--kwargs={"z": 1}')
    (call,) = _take()
    assert (call.name, call.id, call.args, dict(call.kwargs)) == (
        "cmdproj.add",
        task_id,
        (2, 3),
        {"z": 1},
    )
    assert call.eta is None and call.expires is None


def test_call_with_short_options_and_routing(runner: CliRunner, project: Path) -> None:
    task_id = _call(runner, "other.task", "-a", "[1]", "-k", "{}", "--queue", "hipri")
    assert _take("celery") == []
    (call,) = _take("hipri")
    assert (call.name, call.id, call.args) == ("other.task", task_id, (1,))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every send_task call (ETA messages are invisible on the broker)."""
    calls: list[dict[str, Any]] = []
    original = Celery.send_task

    def record(self: Celery, name: str, *args: Any, **options: Any) -> Any:
        calls.append({"name": name, **options})
        return original(self, name, *args, **options)

    monkeypatch.setattr(Celery, "send_task", record)
    return calls


def test_call_countdown_and_expires(
    runner: CliRunner, project: Path, sent: list[dict[str, Any]]
) -> None:
    _call(runner, "cmdproj.add", "--countdown=60", "--expires=120")
    (options,) = sent
    assert options["countdown"] == 60.0
    assert options["expires"] == 120.0
    assert "eta" not in options and "queue" not in options
    assert options["serializer"] == "json"


def test_call_eta_and_expires_as_iso(
    runner: CliRunner, project: Path, sent: list[dict[str, Any]]
) -> None:
    _call(runner, "cmdproj.add", "--eta=2031-01-02T03:04:05Z", "--expires=2031-01-03T00:00:00Z")
    (options,) = sent
    assert options["eta"] == datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert options["expires"] == datetime(2031, 1, 3, tzinfo=timezone.utc)


def test_call_expires_reaches_the_message(runner: CliRunner, project: Path) -> None:
    before = datetime.now(timezone.utc)
    _call(runner, "cmdproj.add", "--expires=120", "--exchange=", "--routing-key=celery")
    (call,) = _take()
    assert call.expires is not None
    assert 115 < (call.expires - before).total_seconds() < 125


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--args=[1,"], ["'-a' / '--args'", "not valid JSON"]),
        (["--args={}"], ["'-a' / '--args'", "{} was not an array"]),
        (["--kwargs=[]"], ["'-k' / '--kwargs'", "[] was not an object"]),
        (["--kwargs={'a': 1}"], ["'-k' / '--kwargs'", "not valid JSON"]),
        (["--eta=tomorrow"], ["'--eta'", "'tomorrow' is not an ISO 8601 date and time"]),
        (["--expires=soon"], ["'--expires'", "'soon' is not an ISO 8601 date and time"]),
        (["--countdown=x"], ["'--countdown'"]),
    ],
)
def test_call_bad_option_values(
    runner: CliRunner, project: Path, argv: list[str], fragments: list[str]
) -> None:
    result = runner.invoke(celeriac, ["-A", "cmdproj", "call", "cmdproj.add", *argv])
    assert result.exit_code == 2
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_call_without_app_uses_the_default_app(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-b", "memory://cli-default", "call", "some.task"])
    assert result.exit_code == 0, result.output
    uuid.UUID(result.stdout.strip())


# -- result -----------------------------------------------------------------------------------


def test_result_prints_the_value(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")  # loads the app
    _app().backend.mark_as_done("id-1", {"a": [1, 2]})
    result = runner.invoke(celeriac, ["-A", "cmdproj", "result", "id-1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "{'a': [1, 2]}\n"


def test_result_with_task_name(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")
    _app().backend.mark_as_done("id-2", 5)
    result = runner.invoke(celeriac, ["-A", "cmdproj", "result", "id-2", "-t", "cmdproj.add"])
    assert result.stdout == "5\n"
    unknown = runner.invoke(celeriac, ["-A", "cmdproj", "result", "id-2", "--task", "nope"])
    assert unknown.exit_code == 2
    assert unknown.stderr == "Error: Task 'nope' is not registered with this app.\n"


def _store_failure(task_id: str) -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        error: Any = exc
    _app().backend.mark_as_failure(task_id, error, traceback="Traceback (fake):\n  boom\n")


def test_result_of_a_failed_task(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")
    _store_failure("id-3")
    result = runner.invoke(celeriac, ["-A", "cmdproj", "result", "id-3"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Task id-3 raised ZeroDivisionError('boom') (use --traceback to see its traceback)\n"
    )
    shown = runner.invoke(celeriac, ["-A", "cmdproj", "result", "id-3", "--traceback"])
    assert shown.exit_code == 0
    assert shown.stdout == "Traceback (fake):\n  boom\n\n"


def test_result_when_results_are_disabled(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "nores", "result", "some-id"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "result backend" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1


# -- purge ------------------------------------------------------------------------------------

PROMPT = (
    "You're about to delete all waiting tasks from the queues: celery. "
    "There is no undo for this operation! Are you sure? [y/N]"
)


def _size(queue: str = "celery") -> int:
    with _app().connection() as conn:
        return conn.size(queue)


def test_purge_asks_first(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")
    _call(runner, "cmdproj.add")
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge"], input="y\n")
    assert result.exit_code == 0, result.output
    assert PROMPT in result.output
    assert result.output.endswith("Purged 2 messages from 1 known task queue.\n")
    assert _size() == 0


def test_purge_declined(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge"], input="n\n")
    assert result.exit_code == 1
    assert "Aborted!" in result.output
    assert _size() == 1


def test_purge_force_and_queue_selection(runner: CliRunner, project: Path) -> None:
    _call(runner, "cmdproj.add")
    _call(runner, "cmdproj.add", "--queue=q1")
    _call(runner, "cmdproj.add", "--queue=q2")
    _call(runner, "cmdproj.add", "--queue=q2")
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge", "-f", "-Q", "q1,q2", "-X", "q1"])
    assert result.exit_code == 0, result.output
    assert result.output == "Purged 2 messages from 1 known task queue.\n"
    assert (_size("celery"), _size("q1"), _size("q2")) == (1, 1, 0)
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge", "-f", "-Q", "celery", "-Q", "q1"])
    assert result.output == "Purged 2 messages from 2 known task queues.\n"


def test_purge_with_nothing_waiting(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge", "--force"])
    assert result.exit_code == 0
    assert result.output == "No messages purged from 1 queue.\n"


def test_purge_excluding_everything_does_nothing(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "cmdproj", "purge", "-X", "celery"])
    assert result.exit_code == 0
    assert result.output == ""
