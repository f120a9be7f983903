"""``celeriac shell``: an interactive Python with the app and its tasks at hand.

IPython when importable, else bpython, else the standard ``code.interact`` (which reads
any stdin, so the shell also runs without a terminal: ``echo 'print(app)' | celeriac shell``).
"""

from __future__ import annotations

import code
import importlib
import importlib.util
import sys
from typing import Any

import click

import celeriac
from celeriac.app.base import Celery
from celeriac.cli.base import CeleriacCommand, CeleriacOption, CLIError, get_obj

_S = "Shell Options"


@click.command(cls=CeleriacCommand)
@click.option(
    "-I", "--ipython", is_flag=True, cls=CeleriacOption, help_group=_S, help="Force IPython."
)
@click.option(
    "-B", "--bpython", is_flag=True, cls=CeleriacOption, help_group=_S, help="Force bpython."
)
@click.option(
    "--python",
    is_flag=True,
    cls=CeleriacOption,
    help_group=_S,
    help="Force the default Python shell.",
)
@click.option(
    "-T",
    "--without-tasks",
    is_flag=True,
    cls=CeleriacOption,
    help_group=_S,
    help="Don't add tasks to locals.",
)
@click.pass_context
def shell(
    ctx: click.Context, ipython: bool, bpython: bool, python: bool, without_tasks: bool
) -> None:
    """Start a Python shell with the app and its tasks.

    \b
    Names in the shell:
    - app, celery: the application (-A), its modules imported (imports, include);
    - Task, and every registered task by its short name (add for proj.tasks.add),
      unless --without-tasks.
    """
    app = get_obj(ctx).app
    app.import_default_modules()
    names = shell_locals(app, with_tasks=not without_tasks)
    if python:
        _python(names)
    elif ipython:
        _require("IPython", "ipython")
        _ipython(names)
    elif bpython:
        _require("bpython", "bpython")
        _bpython(names)
    elif _importable("IPython"):
        _ipython(names)
    elif _importable("bpython"):
        _bpython(names)
    else:
        _python(names)


def shell_locals(app: Celery, *, with_tasks: bool = True) -> dict[str, Any]:
    """``app``, ``celery``, ``Task`` and (``with_tasks``) each task under its short name."""
    names: dict[str, Any] = {"app": app, "celery": app, "Task": celeriac.Task}
    if with_tasks:
        for name, task in sorted(app.tasks.items()):
            if not name.startswith("celery."):
                names[name.rpartition(".")[2]] = task
    return names


def _banner(names: dict[str, Any]) -> str:
    tasks = sorted(k for k, v in names.items() if isinstance(v, celeriac.Task) and k != "Task")
    listed = ", ".join(tasks) if tasks else "(none)"
    return (
        f"celeriac {celeriac.__version__} shell, Python {sys.version.split()[0]}\n"
        f"app (also celery): {names['app']!r}\ntasks: {listed}"
    )


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _require(module: str, package: str) -> None:
    if not _importable(module):
        raise CLIError(
            f"{module} is not installed: pip install {package}, or use --python.", exit_code=1
        )


def _python(names: dict[str, Any]) -> None:
    if sys.stdin.isatty():
        try:  # lazy: readline is missing on some platforms, and only a terminal needs it
            import readline
            import rlcompleter
        except ImportError:  # some platforms have no readline
            pass
        else:
            readline.set_completer(rlcompleter.Completer(names).complete)
            readline.parse_and_bind("tab: complete")
    code.interact(banner=_banner(names), local=names, exitmsg="")


def _ipython(names: dict[str, Any]) -> None:
    ipython = importlib.import_module("IPython")  # optional: not a dependency

    ipython.start_ipython(argv=[], user_ns=names, display_banner=False)


def _bpython(names: dict[str, Any]) -> None:
    bpython = importlib.import_module("bpython")  # optional: not a dependency

    bpython.embed(names, banner=_banner(names))


__all__ = ["shell", "shell_locals"]
