"""The ``celeriac`` command: global options, the table of subcommands, ``main()``."""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Sequence
from typing import Any

import click

from celeriac import __version__
from celeriac.app.base import Celery
from celeriac.cli.base import CLIContext, CLIError, traceback_wanted
from celeriac.cli.beat import beat
from celeriac.cli.call import call
from celeriac.cli.check import check
from celeriac.cli.cleanup import cleanup
from celeriac.cli.dead import dead
from celeriac.cli.events import events
from celeriac.cli.help import help_command
from celeriac.cli.monitor import flower, monitor
from celeriac.cli.multi import multi
from celeriac.cli.not_yet import EPILOG, MISSING_COMMANDS
from celeriac.cli.purge import purge
from celeriac.cli.remote import control, inspect, status
from celeriac.cli.report import report
from celeriac.cli.result import result
from celeriac.cli.schedule import schedule
from celeriac.cli.shell import shell
from celeriac.cli.worker import worker
from celeriac.exceptions import ImproperlyConfigured, OperationalError

#: Every subcommand, in the order of ``celeriac --help``; later commands are added here.
COMMANDS: list[click.Command] = [
    worker,
    beat,
    schedule,
    events,
    monitor,
    flower,
    inspect,
    control,
    status,
    multi,
    check,
    call,
    result,
    purge,
    cleanup,
    dead,
    shell,
    report,
    help_command,
]


class CeleriacGroup(click.Group):
    """The top-level group: did-you-mean for typos, one-line errors for known failures."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [command.name for command in COMMANDS if command.name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ImproperlyConfigured as exc:
            # Bad configuration: unknown broker scheme, unknown pool, missing setting.
            raise CLIError(str(exc), exit_code=2) from None
        except OperationalError as exc:
            raise CLIError(str(exc), exit_code=1) from None
        except Exception as exc:
            obj = ctx.find_object(CLIContext)
            if traceback_wanted(obj.debug if obj else False):
                traceback.print_exc()
                raise CLIError(repr(exc)) from None
            raise CLIError(
                f"{exc!r} (pass --debug or set CELERIAC_TRACEBACK=1 for the traceback)"
            ) from None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"celeriac {__version__}")
        ctx.exit()


def _chdir(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Eager, so -A is resolved from the new directory.
    if value:
        try:
            os.chdir(value)
        except OSError as exc:
            raise CLIError(f"Cannot change to --workdir {value!r}: {exc.strerror}", 2) from None
    return value


@click.group(cls=CeleriacGroup, invoke_without_command=True, epilog=EPILOG)
@click.option("-A", "--app", envvar="CELERIAC_APP", help="The application: module[:attr].")
@click.option("-b", "--broker", envvar="CELERIAC_BROKER_URL", help="Broker URL.")
@click.option("--result-backend", envvar="CELERIAC_RESULT_BACKEND", help="Result backend URL.")
@click.option("--loader", help="Accepted for compatibility with Celery; ignored.")
@click.option(
    "--config", envvar="CELERIAC_CONFIG_MODULE", help="Configuration module (config_from_object)."
)
@click.option(
    "--workdir",
    is_eager=True,
    expose_value=False,
    callback=_chdir,
    help="Change to this directory first.",
)
@click.option("-C", "--no-color", is_flag=True, envvar="NO_COLOR", help="Disable colors.")
@click.option("-q", "--quiet", is_flag=True, help="Less output (no worker banner).")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.pass_context
def celeriac(
    ctx: click.Context,
    app: str | None,
    broker: str | None,
    result_backend: str | None,
    loader: str | None,
    config: str | None,
    no_color: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """celeriac command entrypoint: a Celery-compatible task queue."""
    del loader  # Celery's loaders do not exist here; accepted so scripts keep working.
    if no_color:
        ctx.color = False
    preset = ctx.obj if isinstance(ctx.obj, Celery) else None  # app.start()
    ctx.obj = CLIContext(
        instance=preset,
        app=app,
        broker=broker,
        result_backend=result_backend,
        config=config,
        quiet=quiet,
        no_color=no_color,
        debug=debug,
    )
    ctx.call_on_close(ctx.obj.close)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _command in [*COMMANDS, *MISSING_COMMANDS]:
    celeriac.add_command(_command)


def main(argv: Sequence[str] | None = None, *, app: Celery | None = None) -> int:
    """Run the CLI and return its exit code (the console script's entry point).

    ``app``: the application to use when ``-A`` is not given (``app.start()``).
    """
    try:
        args = list(argv) if argv is not None else None
        celeriac.main(args=args, prog_name="celeriac", obj=app)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(exc.code, err=True)
        return 1
    return 0


__all__ = ["COMMANDS", "celeriac", "main"]
