"""``celeriac monitor`` (also ``celeriac flower``): the web monitor, from the ``monitor`` extra.

A thin shell over :func:`celeriac.web.server.serve`; the web package (Starlette, uvicorn,
Jinja2) is imported only when the command runs, so the CLI works without the extra and the
command then says how to install it.
"""

from __future__ import annotations

from typing import Any

import click

from celeriac.cli.base import CeleriacCommand, CeleriacOption, CLIError, get_obj

_G = "Monitor Options"
#: The packages of the ``monitor`` extra, by import name.
EXTRA_MODULES = frozenset({"starlette", "uvicorn", "jinja2", "multipart", "python_multipart"})
INSTALL = "pip install 'celeriac[monitor]'"


def _options(fn: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option(
            "--port",
            cls=CeleriacOption,
            type=int,
            default=5555,
            show_default=True,
            help_group=_G,
            help="Port to listen on.",
        ),
        click.option(
            "--address",
            cls=CeleriacOption,
            default="127.0.0.1",
            show_default=True,
            help_group=_G,
            help="Address to listen on; off loopback only with --basic-auth or --auth-token.",
        ),
        click.option(
            "--basic-auth",
            cls=CeleriacOption,
            multiple=True,
            metavar="USER:PASSWORD",
            envvar="CELERIAC_MONITOR_BASIC_AUTH",
            help_group=_G,
            help="Require HTTP basic authentication (repeat for several users, or give "
            "user:pass,user:pass as for Flower).",
        ),
        click.option(
            "--auth-token",
            cls=CeleriacOption,
            envvar="CELERIAC_MONITOR_TOKEN",
            help_group=_G,
            help="Require 'Authorization: Bearer TOKEN' (for scripts).",
        ),
        click.option(
            "--read-only",
            cls=CeleriacOption,
            is_flag=True,
            help_group=_G,
            help="Show everything, allow no control (revoke, limits, pool, shutdown).",
        ),
        click.option(
            "--db",
            cls=CeleriacOption,
            default="celeriac-monitor.sqlite",
            show_default=True,
            help_group=_G,
            help="SQLite file of the task history (kept across restarts).",
        ),
        click.option(
            "--max-tasks",
            cls=CeleriacOption,
            type=click.IntRange(min=1),
            default=100_000,
            show_default=True,
            help_group=_G,
            help="Tasks kept in the history (oldest go).",
        ),
        click.option(
            "--inspect-timeout",
            cls=CeleriacOption,
            type=float,
            default=1.0,
            show_default=True,
            help_group=_G,
            help="Seconds to wait for workers' answers to inspect requests.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(
    ctx: click.Context,
    port: int,
    address: str,
    basic_auth: tuple[str, ...],
    auth_token: str | None,
    read_only: bool,
    db: str,
    max_tasks: int,
    inspect_timeout: float,
) -> None:
    try:
        # lazy: the web monitor is an optional extra (Starlette, uvicorn, Jinja2)
        from celeriac.web import security, server
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in EXTRA_MODULES:
            raise CLIError(
                f"celeriac monitor needs the monitor extra ({exc.name} is missing): {INSTALL}",
                exit_code=2,
            ) from None
        raise
    try:
        access = security.Access(
            basic_auth=security.parse_basic_auth(basic_auth),
            auth_token=auth_token or None,
            read_only=read_only,
        )
        security.check_exposure(address, access)
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    app = get_obj(ctx).app
    try:
        server.serve(
            app,
            access,
            address=address,
            port=port,
            db=db,
            max_tasks=max_tasks,
            inspect_timeout=inspect_timeout,
            on_ready=lambda url: click.echo(f"celeriac monitor: {url} (Ctrl-C to stop)"),
        )
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    except KeyboardInterrupt:
        pass


@click.command(cls=CeleriacCommand)
@_options
@click.pass_context
def monitor(ctx: click.Context, /, **options: Any) -> None:
    """Web monitor: workers, tasks, controls, Flower's HTTP API and /metrics."""
    _run(ctx, **options)


@click.command("flower", cls=CeleriacCommand)
@_options
@click.pass_context
def flower(ctx: click.Context, /, **options: Any) -> None:
    """The web monitor under the name Celery users type (same as `monitor`)."""
    _run(ctx, **options)


__all__ = ["EXTRA_MODULES", "INSTALL", "flower", "monitor"]
