"""Celery's commands and worker options that celeriac does not have yet.

Each is there, hidden, so that using it exits with code 2 and one line saying what is
missing and what to do instead, rather than click's bare "No such command".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from celeriac.cli.base import CLIError
from celeriac.utils import missing
from celeriac.utils.missing import Missing

_Fn = TypeVar("_Fn", bound=Callable[..., Any])

#: Celery's subcommands that celeriac lacks.
COMMANDS: dict[str, Missing] = {
    "amqp": missing.AMQP,
    "list": missing.LIST,
    "migrate": missing.MIGRATE,
    "graph": missing.GRAPH,
    "upgrade": missing.UPGRADE,
    "logtool": missing.LOGTOOL,
}

#: Celery worker options that celeriac lacks: (declarations, is a flag, what is missing).
WORKER_OPTIONS: tuple[tuple[tuple[str, ...], bool, Missing], ...] = (
    (("--disable-prefetch",), True, missing.PREFETCH_OFF),
    (("--pool-start-method",), False, missing.START_METHOD),
)

EPILOG = (
    "Celery commands not in celeriac yet (each says what to use instead): "
    + ", ".join(COMMANDS)
    + "."
)


def missing_command(name: str, what: Missing) -> click.Command:
    """A hidden command that exits 2 with what is missing (any arguments, even --help)."""
    message = what.message(f"celeriac {name}")

    def callback() -> None:
        raise CLIError(message, exit_code=2)

    return click.Command(
        name,
        callback=callback,
        help=message,
        hidden=True,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def refuse_worker_options(fn: _Fn) -> _Fn:
    """Add every option of :data:`WORKER_OPTIONS`, hidden, failing when given."""
    for decls, is_flag, what in WORKER_OPTIONS:
        fn = click.option(
            *decls,
            is_flag=is_flag,
            hidden=True,
            expose_value=False,
            callback=_refuse(what, "worker " + "/".join(decls[:2])),
        )(fn)
    return fn


def _refuse(what: Missing, used: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            raise CLIError(what.message(used), exit_code=2)

    return callback


MISSING_COMMANDS = [missing_command(name, what) for name, what in COMMANDS.items()]

__all__ = ["COMMANDS", "EPILOG", "MISSING_COMMANDS", "WORKER_OPTIONS", "refuse_worker_options"]
