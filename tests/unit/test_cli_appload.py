"""``-A`` resolution: every form Celery accepts, and one-line errors for the bad ones."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from celeriac import Celery
from celeriac.cli.appload import AppImportFailed, AppMissing, AppModuleNotFound, find_app
from celeriac.cli.main import celeriac
from celeriac.utils import current

Write = Callable[[str, str], Path]


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """Write modules into a fresh working directory; forget them after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    # Apps made by the CLI must not stay the process's current/default app after the test.
    monkeypatch.setattr(current, "_apps", dict(current._apps))
    before = set(sys.modules)

    def _write(relpath: str, source: str) -> Path:
        path = tmp_path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return path

    yield _write
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


APP = "from celeriac import Celery\n"


def test_module_app_attribute(write: Write) -> None:
    write("m_app.py", APP + "app = Celery('a')\nother = Celery('b')\n")
    assert find_app("m_app") is sys.modules["m_app"].app


def test_module_celery_attribute(write: Write) -> None:
    write("m_celery.py", APP + "celery = Celery('c')\nother = Celery('d')\n")
    assert find_app("m_celery") is sys.modules["m_celery"].celery


def test_module_single_instance(write: Write) -> None:
    write("m_single.py", APP + "my_app = Celery('s')\nalias = my_app\n")
    assert find_app("m_single") is sys.modules["m_single"].my_app


def test_module_app_attribute_that_is_not_an_app_is_skipped(write: Write) -> None:
    # A web framework's `app` next to the Celery instance: pick the Celery one.
    write("m_web.py", APP + "app = object()\nworker_app = Celery('w')\n")
    assert find_app("m_web") is sys.modules["m_web"].worker_app


def test_module_colon_attr(write: Write) -> None:
    write("m_colon.py", APP + "first = Celery('1')\nsecond = Celery('2')\n")
    assert find_app("m_colon:second") is sys.modules["m_colon"].second


def test_module_dot_attr(write: Write) -> None:
    write("m_dot.py", APP + "first = Celery('1')\nsecond = Celery('2')\n")
    assert find_app("m_dot.second") is sys.modules["m_dot"].second


def test_dotted_attr_after_colon(write: Write) -> None:
    write("m_nested.py", APP + "class Holder:\n    app = Celery('n')\n")
    assert find_app("m_nested:Holder.app") is sys.modules["m_nested"].Holder.app


def test_factory_after_colon(write: Write) -> None:
    write(
        "m_factory.py",
        APP + "made = []\ndef create_app():\n    made.append(Celery('f'))\n    return made[-1]\n",
    )
    app = find_app("m_factory:create_app")
    assert isinstance(app, Celery)
    assert sys.modules["m_factory"].made == [app]


def test_package_with_celery_submodule(write: Write) -> None:
    write("pkg_a/__init__.py", "")
    write("pkg_a/celery.py", APP + "app = Celery('pkg_a')\n")
    assert find_app("pkg_a") is sys.modules["pkg_a.celery"].app


def test_package_celery_module_spelled_out(write: Write) -> None:
    write("pkg_b/__init__.py", "")
    write("pkg_b/celery.py", APP + "app = Celery('pkg_b')\n")
    assert find_app("pkg_b.celery") is sys.modules["pkg_b.celery"].app
    assert find_app("pkg_b.celery:app") is sys.modules["pkg_b.celery"].app


def test_package_exporting_its_app(write: Write) -> None:
    write("pkg_c/__init__.py", "from .celery import app as celery_app\n")
    write("pkg_c/celery.py", APP + "app = Celery('pkg_c')\n")
    assert find_app("pkg_c") is sys.modules["pkg_c.celery"].app


def test_submodule_holding_the_app(write: Write) -> None:
    write("pkg_d/__init__.py", "")
    write("pkg_d/worker_app.py", APP + "app = Celery('pkg_d')\n")
    assert find_app("pkg_d.worker_app") is sys.modules["pkg_d.worker_app"].app


def test_working_directory_is_put_on_sys_path(write: Write, tmp_path: Path) -> None:
    write("m_path.py", APP + "app = Celery('p')\n")
    assert str(tmp_path) not in sys.path
    find_app("m_path")
    assert sys.path[0] == str(tmp_path)


def test_missing_module(write: Write) -> None:
    with pytest.raises(AppModuleNotFound) as info:
        find_app("nosuch_mod")
    assert str(info.value).startswith(
        "Unable to load celery application. The module nosuch_mod was not found."
    )
    assert "PYTHONPATH" in str(info.value)
    with pytest.raises(AppModuleNotFound, match="The module nosuch_mod was not found"):
        find_app("nosuch_mod.sub:app")


def test_module_importing_a_missing_dependency(write: Write) -> None:
    write("m_dep.py", "import not_installed_dependency_xyz\n")
    with pytest.raises(AppImportFailed) as info:
        find_app("m_dep")
    message = str(info.value)
    assert "While trying to load the module m_dep the following error occurred" in message
    assert "ModuleNotFoundError(\"No module named 'not_installed_dependency_xyz'\")" in message


def test_module_without_an_app(write: Write) -> None:
    write("m_none.py", "x = 1\n")
    with pytest.raises(AppMissing) as info:
        find_app("m_none")
    assert str(info.value).startswith(
        "Unable to load celery application. Module 'm_none' has no attribute 'app'"
    )


def test_module_with_several_apps(write: Write) -> None:
    write("m_two.py", APP + "one = Celery('1')\ntwo = Celery('2')\n")
    with pytest.raises(AppMissing, match=r"several Celery apps \(one, two\); choose one"):
        find_app("m_two")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("m_attr:nope", "Module 'm_attr' has no attribute 'nope'."),
        ("m_attr.nope", "Module 'm_attr' has no attribute 'nope'."),
        ("m_attr:value", "'m_attr:value' is a int, not a Celery application."),
    ],
)
def test_bad_attribute(write: Write, spec: str, expected: str) -> None:
    write("m_attr.py", "value = 42\n")
    with pytest.raises(AppMissing) as info:
        find_app(spec)
    assert str(info.value) == f"Unable to load celery application. {expected}"


def test_factory_that_raises(write: Write) -> None:
    write("m_badfactory.py", "def create():\n    raise RuntimeError('no config')\n")
    with pytest.raises(AppImportFailed, match=r"RuntimeError\('no config'\)"):
        find_app("m_badfactory:create")


# -- through the command line: one line on stderr, exit code 2 -----------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    "spec",
    ["cli_form", "cli_form:app", "cli_form.app", "cli_pkg", "cli_pkg.celery", "cli_pkg.celery:app"],
)
def test_every_form_from_the_command_line(runner: CliRunner, write: Write, spec: str) -> None:
    write("cli_form.py", APP + "app = Celery('cli_form', task_default_queue='form_q')\n")
    write("cli_pkg/__init__.py", "")
    write("cli_pkg/celery.py", APP + "app = Celery('cli_pkg', task_default_queue='form_q')\n")
    result = runner.invoke(celeriac, ["-A", spec, "purge", "-f"])
    assert result.exit_code == 0, result.output
    assert result.output == "No messages purged from 1 queue.\n"


def test_workdir_is_used_to_find_the_app(runner: CliRunner, write: Write, tmp_path: Path) -> None:
    write("sub/in_sub.py", APP + "app = Celery('in_sub')\n")
    result = runner.invoke(celeriac, ["--workdir", "sub", "-A", "in_sub", "purge", "-f"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sub" / "celeriac-broker.sqlite").exists()


def test_app_from_the_environment(
    runner: CliRunner, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("env_app.py", APP + "app = Celery('env_app', task_default_queue='env_q')\n")
    monkeypatch.setenv("CELERIAC_APP", "env_app")
    result = runner.invoke(celeriac, ["purge"], input="n\n")
    assert "from the queues: env_q." in result.output


def _one_line_error(result: Result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code
    stderr = result.stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("Error: ")
    return stderr.strip()


def test_cli_missing_module(runner: CliRunner, write: Write) -> None:
    result = runner.invoke(celeriac, ["-A", "proj", "worker"])
    line = _one_line_error(result)
    assert line.startswith(
        "Error: Unable to load celery application. The module proj was not found."
    )
    assert "PYTHONPATH" in line


def test_cli_broken_module(
    runner: CliRunner, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("broken_mod.py", "1 / 0\n")
    line = _one_line_error(runner.invoke(celeriac, ["-A", "broken_mod", "call", "x"]))
    assert "the module broken_mod" in line
    assert "ZeroDivisionError('division by zero')" in line
    debug = runner.invoke(celeriac, ["--debug", "-A", "broken_mod", "call", "x"])
    assert debug.exit_code == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'broken_mod.py", line 1' in debug.stderr
    monkeypatch.setenv("CELERIAC_TRACEBACK", "1")
    from_env = runner.invoke(celeriac, ["-A", "broken_mod", "call", "x"])
    assert from_env.exit_code == 2
    assert "Traceback (most recent call last)" in from_env.stderr


def test_cli_module_with_syntax_error(runner: CliRunner, write: Write) -> None:
    write("syntax_mod.py", "def (:\n")
    line = _one_line_error(runner.invoke(celeriac, ["-A", "syntax_mod", "result", "x"]))
    assert "the module syntax_mod" in line
    assert "SyntaxError" in line


def test_cli_module_without_app(runner: CliRunner, write: Write) -> None:
    write("plain_mod.py", "x = 1\n")
    line = _one_line_error(runner.invoke(celeriac, ["-A", "plain_mod", "purge", "-f"]))
    assert line.startswith(
        "Error: Unable to load celery application. Module 'plain_mod' has no attribute 'app'"
    )


def test_help_works_even_when_the_app_is_broken(runner: CliRunner, write: Write) -> None:
    result = runner.invoke(celeriac, ["-A", "nosuch_app_mod", "worker", "--help"])
    assert result.exit_code == 0
    assert "Usage: celeriac worker" in result.output
