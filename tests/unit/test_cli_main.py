"""The ``celeriac`` group: help, version, misplaced options, errors, worker option mapping."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import __version__
from celeriac.cli import worker as cli_worker
from celeriac.cli.main import COMMANDS, celeriac, main
from tests.cli_project import cli_project

SUBCOMMANDS = (
    "worker",
    "beat",
    "schedule",
    "events",
    "monitor",
    "flower",
    "inspect",
    "control",
    "status",
    "multi",
    "check",
    "call",
    "result",
    "purge",
    "cleanup",
    "dead",
    "shell",
    "report",
    "help",
)


CLIPROJ = """
from celeriac import Celery

app = Celery("cliproj")
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory holding ``cliproj.py`` (an app on the embedded SQLite broker)."""
    with cli_project(tmp_path, monkeypatch, {"cliproj.py": CLIPROJ}) as directory:
        yield directory


def test_help_lists_every_subcommand(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert f"  {name}" in result.output
    for option in ("-A, --app", "-b, --broker", "--result-backend", "--workdir", "--version"):
        assert option in result.output


def test_command_table_is_a_literal_list() -> None:
    assert [command.name for command in COMMANDS] == list(SUBCOMMANDS)


def test_no_subcommand_prints_help(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, [])
    assert result.exit_code == 0
    assert "Commands:" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"celeriac {__version__}\n"


def test_help_command_is_the_same_as_help_option(runner: CliRunner) -> None:
    assert runner.invoke(celeriac, ["help"]).output == runner.invoke(celeriac, ["--help"]).output


def test_help_command_for_a_subcommand(runner: CliRunner) -> None:
    via_command = runner.invoke(celeriac, ["help", "worker"])
    via_option = runner.invoke(celeriac, ["worker", "--help"])
    assert via_command.exit_code == 0
    assert via_command.output == via_option.output
    assert "Usage: celeriac worker" in via_command.output
    for section in ("Worker Options", "Pool Options", "Queue Options", "Daemonization Options"):
        assert section in via_command.output


def test_help_for_an_unknown_command(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, ["help", "wroker"])
    assert result.exit_code == 2
    assert "No such command 'wroker'. Did you mean 'worker'?" in result.stderr


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(runner: CliRunner, name: str) -> None:
    result = runner.invoke(celeriac, [name, "--help"])
    assert result.exit_code == 0
    assert f"Usage: celeriac {name}" in result.output


def test_unknown_command_suggests_the_nearest(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, ["purg"])
    assert result.exit_code == 2
    assert "Did you mean 'purge'?" in result.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["worker", "-A", "proj"], "-A must come before the subcommand: celeriac -A proj worker"),
        (["worker", "-Aproj"], "-A must come before the subcommand: celeriac -A proj worker"),
        (
            ["worker", "-l", "info", "--app=proj"],
            "--app must come before the subcommand: celeriac --app proj worker",
        ),
        (["call", "t", "-A", "proj"], "-A must come before the subcommand: celeriac -A proj call"),
        (
            ["purge", "-b", "memory://"],
            "-b must come before the subcommand: celeriac -b memory:// purge",
        ),
    ],
)
def test_global_option_after_the_subcommand(
    runner: CliRunner, argv: list[str], expected: str
) -> None:
    result = runner.invoke(celeriac, argv)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {expected}"


def test_main_returns_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"celeriac {__version__}\n"
    assert main(["worker", "-A", "proj"]) == 2


def test_unknown_broker_scheme_is_one_line(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "-b", "ampq://localhost", "worker"])
    assert result.exit_code == 2
    assert "Unknown broker scheme 'ampq'" in result.stderr
    assert "Did you mean amqp://?" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_result_backend_is_one_line(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "--result-backend", "rdis://", "worker"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "rdis" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_workdir(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(celeriac, ["--workdir", str(tmp_path / "nope"), "purge", "-f"])
    assert result.exit_code == 2
    assert "Cannot change to --workdir" in result.stderr


def test_config_module_is_read(runner: CliRunner, project: Path) -> None:
    (project / "cliconf.py").write_text("task_default_queue = 'fromconfig'\n")
    importlib.invalidate_caches()
    result = runner.invoke(celeriac, ["-A", "cliproj", "--config", "cliconf", "purge"], input="n\n")
    assert "from the queues: fromconfig." in result.output


def test_missing_config_module(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "--config", "nosuchconf", "purge", "-f"])
    assert result.exit_code == 2
    assert "Unable to load the configuration module 'nosuchconf'" in result.stderr


# -- worker: options reach Worker(...) ---------------------------------------------------------


class FakeWorker:
    """Stands in for celeriac.worker.worker.Worker: records its arguments, returns a code."""

    made: list[FakeWorker] = []
    code = 0

    def __init__(self, app: Any, **kwargs: Any) -> None:
        self.app = app
        self.kwargs = kwargs
        self.pid_seen: str | None = None
        FakeWorker.made.append(self)

    def start(self) -> int:
        pidfile = os.environ.get("FAKE_PIDFILE")
        if pidfile:
            self.pid_seen = Path(pidfile).read_text().strip()
        return FakeWorker.code


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> type[FakeWorker]:
    monkeypatch.setattr(cli_worker, "Worker", FakeWorker)
    monkeypatch.setattr(FakeWorker, "made", [])
    monkeypatch.setattr(FakeWorker, "code", 0)
    return FakeWorker


def test_worker_defaults(runner: CliRunner, project: Path, fake_worker: type[FakeWorker]) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker"])
    assert result.exit_code == 0, result.output
    (made,) = fake_worker.made
    assert made.app.main == "cliproj"
    assert made.kwargs == {
        "hostname": None,
        "concurrency": None,
        "pool": None,
        "queues": None,
        "loglevel": "WARNING",
        "logfile": None,
        "prefetch_multiplier": None,
        "without_banner": False,
        "install_signal_handlers": True,
        "beat": False,
        "schedule_filename": None,
        "without_heartbeat": False,
        "heartbeat_interval": None,
        "pidfile": None,
        "autoscale": None,
    }


def test_worker_options(
    runner: CliRunner,
    project: Path,
    fake_worker: type[FakeWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = project / "w.pid"
    monkeypatch.setenv("FAKE_PIDFILE", str(pidfile))
    fake_worker.code = 3
    argv = [
        "-q",
        "-A",
        "cliproj",
        "worker",
        "-l",
        "info",
        "-c",
        "3",
        "-P",
        "threads",
        "-Q",
        "a,b",
        "-Q",
        "c",
        "-n",
        "w1@%h",
        "--prefetch-multiplier",
        "2",
        "-f",
        "w.log",
        "-E",
        "-O",
        "fair",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--time-limit",
        "30",
        "--max-tasks-per-child",
        "5",
        "--pidfile",
        str(pidfile),
        "--liveness-file",
        "/run/%n.alive",
    ]
    result = runner.invoke(celeriac, argv)
    assert result.exit_code == 3, result.output
    (made,) = fake_worker.made
    assert made.kwargs["loglevel"] == "INFO"
    assert made.kwargs["concurrency"] == 3
    assert made.kwargs["pool"] == "threads"
    assert made.kwargs["queues"] == ["a", "b", "c"]
    assert made.kwargs["hostname"] == "w1@%h"
    assert made.kwargs["prefetch_multiplier"] == 2
    assert made.kwargs["logfile"] == "w.log"
    assert made.kwargs["without_banner"] is True
    assert made.app.conf.worker_send_task_events is True
    assert made.app.conf.task_time_limit == 30
    assert made.app.conf.worker_max_tasks_per_child == 5
    assert made.app.conf.worker_liveness_file == "/run/%n.alive"
    assert made.pid_seen == str(os.getpid())
    assert not pidfile.exists()


def test_worker_exclude_queues(
    runner: CliRunner, project: Path, fake_worker: type[FakeWorker]
) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-Q", "a,b,c", "-X", "b"])
    assert result.exit_code == 0, result.output
    assert fake_worker.made[0].kwargs["queues"] == ["a", "c"]
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-X", "celery"])
    assert result.exit_code == 2
    assert "excludes every queue" in result.stderr


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING", "error", "critical"])
def test_worker_loglevel_is_case_insensitive(
    runner: CliRunner, project: Path, fake_worker: type[FakeWorker], level: str
) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-l", level])
    assert result.exit_code == 0, result.output
    assert fake_worker.made[0].kwargs["loglevel"] == level.upper()


def test_worker_bad_options(
    runner: CliRunner, project: Path, fake_worker: type[FakeWorker]
) -> None:
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-l", "loud"])
    assert result.exit_code == 2
    assert "'-l' / '--loglevel'" in result.stderr
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-c", "many"])
    assert result.exit_code == 2
    assert "'-c' / '--concurrency'" in result.stderr
    assert fake_worker.made == []


def test_worker_refuses_a_live_pidfile(
    runner: CliRunner, project: Path, fake_worker: type[FakeWorker]
) -> None:
    pidfile = project / "live.pid"
    pidfile.write_text(f"{os.getppid()}\n")
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "--pidfile", str(pidfile)])
    assert result.exit_code == 73  # Celery's EX_CANTCREAT
    assert "already exists" in result.stderr
    assert fake_worker.made == []
    assert pidfile.read_text().strip() == str(os.getppid())


def test_worker_replaces_a_stale_pidfile(
    runner: CliRunner,
    project: Path,
    fake_worker: type[FakeWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = project / "stale.pid"
    pidfile.write_text("999999999\n")
    monkeypatch.setenv("FAKE_PIDFILE", str(pidfile))
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "--pidfile", str(pidfile)])
    assert result.exit_code == 0, result.output
    assert fake_worker.made[0].pid_seen == str(os.getpid())
    assert not pidfile.exists()


def test_worker_error_from_the_worker_is_one_line(
    runner: CliRunner,
    project: Path,
    fake_worker: type[FakeWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celeriac.exceptions import ImproperlyConfigured

    def refuse(self: FakeWorker, app: Any, **kwargs: Any) -> None:
        raise ImproperlyConfigured("Unknown pool 'gevnt'. Did you mean gevent?")

    monkeypatch.setattr(FakeWorker, "__init__", refuse)
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-P", "gevnt"])
    assert result.exit_code == 2
    assert result.stderr == "Error: Unknown pool 'gevnt'. Did you mean gevent?\n"


def test_bad_pool_is_one_line(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "celeriac.worker.worker", raising=False)
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker", "-P", "bogus"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "bogus" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unexpected_errors_are_one_line_unless_debug(
    runner: CliRunner,
    project: Path,
    fake_worker: type[FakeWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(self: FakeWorker) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(FakeWorker, "start", explode)
    result = runner.invoke(celeriac, ["-A", "cliproj", "worker"])
    assert result.exit_code == 1
    assert "Error: RuntimeError('kaboom')" in result.stderr
    assert "Traceback" not in result.stderr
    result = runner.invoke(celeriac, ["--debug", "-A", "cliproj", "worker"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
