"""The command line's first contact: Celery commands and options celeriac lacks say so,
help texts promise nothing that does not exist, ``shell``, ``report`` and ``app.start()``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import shell as shell_module
from celeriac.cli.main import COMMANDS, celeriac
from celeriac.cli.not_yet import COMMANDS as MISSING
from celeriac.cli.not_yet import WORKER_OPTIONS
from celeriac.utils.missing import COMPATIBILITY
from tests.cli_project import cli_project

FIRSTPROJ = """
from celeriac import Celery

app = Celery(
    "firstproj",
    broker="redis://:hunter2@localhost:6379/0",
    backend="cache+memory://firstproj",
)
app.conf.update(SECRET_KEY="sesame", task_default_queue="jobs")

@app.task
def add(x, y):
    return x + y

@app.task(name="other.mult")
def mult(x, y):
    return x * y
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``firstproj``: an app on a private memory broker with two tasks and a secret."""
    with cli_project(tmp_path, monkeypatch, {"firstproj.py": FIRSTPROJ}) as directory:
        yield directory


def _all_help(runner: CliRunner) -> dict[str, str]:
    texts = {"": runner.invoke(celeriac, ["--help"]).output}
    for command in COMMANDS:
        texts[command.name or ""] = runner.invoke(celeriac, [str(command.name), "--help"]).output
    return texts


# -- commands and options celeriac lacks ------------------------------------------------------


@pytest.mark.parametrize("name", list(MISSING))
def test_missing_celery_command_exits_2_with_what_to_do(runner: CliRunner, name: str) -> None:
    for args in ([name], [name, "--help"], [name, "active", "--timeout", "1"]):
        result = runner.invoke(celeriac, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"celeriac {name}: celeriac does not have" in result.stderr
        assert "Instead," in result.stderr and COMPATIBILITY in result.stderr
        assert "No such command" not in result.stderr


def test_missing_commands_are_hidden_but_listed_as_not_there(runner: CliRunner) -> None:
    text = runner.invoke(celeriac, ["--help"]).output
    commands = text.split("Commands:")[1].split("\n\n")[0]
    assert "beat" in commands and "multi" in commands and "amqp" not in commands
    assert "inspect" in commands and "events" in commands and "status" in commands
    assert "monitor" in commands and "flower" in commands
    assert "Celery commands not in celeriac yet" in text
    assert "amqp," in text and "inspect," not in text and "flower," not in text


@pytest.mark.parametrize(("decls", "is_flag", "what"), WORKER_OPTIONS)
def test_missing_worker_option_exits_2_before_starting(
    runner: CliRunner, decls: tuple[str, ...], is_flag: bool, what: Any
) -> None:
    for decl in decls:
        args = ["worker", decl] if is_flag else ["worker", decl, "1"]
        result = runner.invoke(celeriac, ["-b", "memory://never-started", *args])
        assert result.exit_code == 2, (args, result.output)
        assert f"celeriac does not have {what.feature} yet" in result.stderr
        assert "celeriac@" not in result.output  # no banner: the worker never started


def test_worker_help_promises_only_what_exists(runner: CliRunner) -> None:
    text = " ".join(runner.invoke(celeriac, ["worker", "--help"]).output.split())
    assert "prefork (default), threads, solo or asyncio" in text
    assert "Send task events (task-received" in text
    assert "-B, --beat" in text and "Also run beat" in text
    assert "-D, --detach" in text and "--autoscale" in text
    assert "Apply optimization profile" not in text
    assert "Don't subscribe to other workers" not in text


def test_only_the_monitor_commands_speak_of_a_web_monitor(runner: CliRunner) -> None:
    for name, text in _all_help(runner).items():
        if name in ("", "monitor", "flower"):
            continue  # the top level lists both commands
        flat = " ".join(text.split()).lower()
        for promise in ("web monitor", "monitors like", "flower"):
            assert promise not in flat, (name, promise)


def test_events_flag_turns_task_events_on_and_the_banner_says_so(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.cli import worker as worker_module
    from celeriac.worker.banner import banner

    seen: dict[str, Any] = {}

    class FakeWorker:
        def __init__(self, app: Celery, **kwargs: Any) -> None:
            seen["app"] = app

        def start(self) -> int:
            return 0

    monkeypatch.setattr(worker_module, "Worker", FakeWorker)
    result = runner.invoke(celeriac, ["-b", "memory://events-flag", "worker", "-E"])
    assert result.exit_code == 0, result.output
    app = seen["app"]
    assert app.conf.worker_send_task_events is True
    text = banner(app, hostname="w@h", concurrency=1, pool="solo", queues=[], with_tasks=False)
    assert "task events: ON" in text
    app.conf.worker_send_task_events = False
    text = banner(app, hostname="w@h", concurrency=1, pool="solo", queues=[], with_tasks=False)
    assert "task events: OFF (enable -E to monitor tasks in this worker)" in text


# -- report --------------------------------------------------------------------------------


def test_report_shows_versions_transport_and_masked_settings(
    runner: CliRunner, project: Path
) -> None:
    result = runner.invoke(celeriac, ["-A", "firstproj", "report"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("software -> celeriac:")
    assert " py:" in out and "platform -> system:" in out
    assert "settings -> transport:redis results:cache+memory://firstproj" in out
    assert "broker_url: 'redis://:********@localhost:6379/0'" in out
    assert "SECRET_KEY: '********'" in out
    assert "task_default_queue: 'jobs'" in out
    assert "hunter2" not in out and "sesame" not in out


def test_app_bugreport_masks_nested_secrets(memory_app: Celery) -> None:
    memory_app.conf.broker_transport_options = {"password": "pw1", "visibility_timeout": 5}
    memory_app.conf.result_backend = "redis://user:pw2@host/1"
    memory_app.conf.task_default_routing_key = "not-a-secret"
    text = memory_app.bugreport()
    assert "pw1" not in text and "pw2" not in text
    assert "'visibility_timeout': 5" in text
    assert "results:redis://user:**@host/1" in text
    assert "task_default_routing_key: 'not-a-secret'" in text


# -- shell ---------------------------------------------------------------------------------


def test_shell_has_the_app_and_every_task_by_short_name(runner: CliRunner, project: Path) -> None:
    script = "print(app.main, celery is app, add.name, mult.name, Task.__name__)\n"
    result = runner.invoke(celeriac, ["-A", "firstproj", "shell", "--python"], input=script)
    assert result.exit_code == 0, result.output
    assert "firstproj True firstproj.add other.mult Task" in result.stdout
    assert "tasks: add, mult" in result.stderr  # the banner


def test_shell_without_tasks(runner: CliRunner, project: Path) -> None:
    script = "print('add' in dir(), app.main)\n"
    result = runner.invoke(celeriac, ["-A", "firstproj", "shell", "--python", "-T"], input=script)
    assert result.exit_code == 0, result.output
    assert "False firstproj" in result.stdout


def test_shell_falls_back_to_plain_python(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell_module, "_importable", lambda module: False)
    result = runner.invoke(celeriac, ["-A", "firstproj", "shell"], input="print(add(2, 3))\n")
    assert result.exit_code == 0, result.output
    assert "5" in result.stdout


def test_shell_prefers_ipython_then_bpython(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(shell_module, "_ipython", lambda names: used.append(("ipython", names)))
    monkeypatch.setattr(shell_module, "_bpython", lambda names: used.append(("bpython", names)))
    monkeypatch.setattr(shell_module, "_importable", lambda module: True)
    assert runner.invoke(celeriac, ["-A", "firstproj", "shell"]).exit_code == 0
    monkeypatch.setattr(shell_module, "_importable", lambda module: module == "bpython")
    assert runner.invoke(celeriac, ["-A", "firstproj", "shell"]).exit_code == 0
    assert [kind for kind, _ in used] == ["ipython", "bpython"]
    assert used[0][1]["add"].name == "firstproj.add"


@pytest.mark.parametrize(("flag", "module"), [("--ipython", "IPython"), ("--bpython", "bpython")])
def test_shell_forced_but_not_installed(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch, flag: str, module: str
) -> None:
    monkeypatch.setattr(shell_module, "_importable", lambda name: False)
    result = runner.invoke(celeriac, ["-A", "firstproj", "shell", flag])
    assert result.exit_code == 1
    assert f"{module} is not installed" in result.stderr and "--python" in result.stderr


# -- app.start() and app.worker_main() -----------------------------------------------------


def test_app_start_runs_the_command_line_with_this_app(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(project))
    app = importlib.import_module("firstproj").app
    assert app.start(["report"]) == 0
    assert "app      -> firstproj:" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["firstproj.py", "report"])
    assert app.start() == 0  # sys.argv[1:]
    assert "firstproj" in capsys.readouterr().out
    assert app.start(["nosuchcommand"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_app_start_lets_an_explicit_app_option_win(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Celery("other", broker="memory://other-start")
    assert other.start(["-A", "firstproj", "report"]) == 0
    assert "app      -> firstproj:" in capsys.readouterr().out
    other.close()


def test_worker_main_runs_the_worker_command(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.cli import worker as worker_module

    started: list[tuple[Celery, dict[str, Any]]] = []

    class FakeWorker:
        def __init__(self, app: Celery, **kwargs: Any) -> None:
            started.append((app, kwargs))

        def start(self) -> int:
            return 3

    monkeypatch.setattr(worker_module, "Worker", FakeWorker)
    assert memory_app.worker_main(["worker", "-P", "solo", "-c", "2"]) == 3
    [(app, kwargs)] = started
    assert app is memory_app
    assert (kwargs["pool"], kwargs["concurrency"]) == ("solo", 2)
    with pytest.raises(ValueError, match="worker sub-command must be specified"):
        memory_app.worker_main(["-l", "INFO"])


def test_help_of_every_command_starts_with_usage(runner: CliRunner) -> None:
    for name, text in _all_help(runner).items():
        assert text.startswith(f"Usage: celeriac {name}".rstrip()), name
    assert isinstance(celeriac, click.Group)
