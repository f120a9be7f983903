"""``celeriac inspect``, ``celeriac control`` and ``celeriac status``: remote control from the
command line (aligned tables for people, ``--json`` for programs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from celeriac.app.commands_args import CONTROL, INSPECT, Parse
from celeriac.app.replies import render, status_lines, to_json
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.cli.base import (
    COMMA_SEPARATED_LIST,
    CeleriacCommand,
    CeleriacOption,
    CLIError,
    flatten,
    get_obj,
)
from celeriac.transports.sqlite.transport import SQLiteTransport

if TYPE_CHECKING:
    from celeriac.app.base import Celery

_G = "Remote Control Options"
NO_REPLY = "No nodes replied within time constraint"


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "-j",
        "--json",
        "as_json",
        cls=CeleriacOption,
        is_flag=True,
        help_group=_G,
        help="Print the replies as JSON.",
    )(fn)
    fn = click.option(
        "-d",
        "--destination",
        cls=CeleriacOption,
        type=COMMA_SEPARATED_LIST,
        multiple=True,
        help_group=_G,
        help="Comma separated list of destination node names.",
    )(fn)
    fn = click.option(
        "-t",
        "--timeout",
        cls=CeleriacOption,
        type=float,
        default=1.0,
        help_group=_G,
        help="Timeout in seconds waiting for reply.",
    )(fn)
    return fn


def _ask(
    ctx: click.Context,
    table: dict[str, Parse],
    method: str,
    args: tuple[str, ...],
    timeout: float,
    destination: tuple[list[str], ...],
) -> dict[str, Any]:
    parse = table.get(method)
    if parse is None:
        raise CLIError(f"Unknown command {method!r}; one of: {', '.join(sorted(table))}", 2)
    try:
        arguments = parse(args)
    except (ValueError, IndexError) as exc:
        raise CLIError(f"{method} {exc}", exit_code=2) from None
    app = get_obj(ctx).app
    nodes = flatten(destination) or None
    replies = app.control.broadcast(
        method,
        arguments,
        destination=nodes,
        reply=True,
        timeout=timeout,
        limit=len(nodes) if nodes else None,
    )
    by_node: dict[str, Any] = {}
    for reply in replies or ():
        by_node.update(reply)
    if not by_node:
        raise CLIError(NO_REPLY)
    return by_node


def _say(ctx: click.Context, text: str) -> None:
    get_obj(ctx).echo(text)


@click.command(cls=CeleriacCommand, context_settings={"allow_extra_args": False})
@click.argument("action", type=click.Choice(sorted(INSPECT)))
@click.argument("args", nargs=-1)
@_options
@click.pass_context
def inspect(
    ctx: click.Context,
    action: str,
    args: tuple[str, ...],
    timeout: float,
    destination: tuple[list[str], ...],
    as_json: bool,
) -> None:
    """Inspect the workers: what they run, hold, know and are.

    \b
    $ celeriac -A proj inspect active
    $ celeriac -A proj inspect stats -d w1@host --json
    $ celeriac -A proj inspect query_task <task id>
    """
    replies = _ask(ctx, INSPECT, action, args, timeout, destination)
    _say(ctx, to_json(replies) if as_json else render(action, replies))


@click.command(cls=CeleriacCommand)
@click.argument("action", type=click.Choice(sorted(CONTROL)))
@click.argument("args", nargs=-1)
@_options
@click.pass_context
def control(
    ctx: click.Context,
    action: str,
    args: tuple[str, ...],
    timeout: float,
    destination: tuple[list[str], ...],
    as_json: bool,
) -> None:
    """Change the workers: revoke, rate limits, pool size, queues, events, shutdown.

    \b
    $ celeriac -A proj control rate_limit proj.tasks.add 10/m
    $ celeriac -A proj control add_consumer extra
    $ celeriac -A proj control shutdown -d w1@host
    """
    replies = _ask(ctx, CONTROL, action, args, timeout, destination)
    _say(ctx, to_json(replies) if as_json else render("ping", replies))


@click.command(cls=CeleriacCommand)
@_options
@click.pass_context
def status(
    ctx: click.Context, timeout: float, destination: tuple[list[str], ...], as_json: bool
) -> None:
    """Show the workers that answer a ping, and how many are online; on SQLite, the files
    they share with this command."""
    files = sqlite_files(get_obj(ctx).app)
    try:
        replies = _ask(ctx, INSPECT, "ping", (), timeout, destination)
    except CLIError as exc:
        if not files:
            raise
        raise CLIError(
            f"{exc.message} on {files[0][1]}. A worker started in another directory uses the "
            "file there: start it here, or point both at one file with "
            f"broker_url='sqlite:///{files[0][1]}'."
        ) from None
    if as_json:
        _say(ctx, to_json(replies))
        return
    lines = status_lines(replies)
    if files:
        lines += ["", *(f"{label}: {path}" for label, path in files)]
    _say(ctx, "\n".join(lines))


def sqlite_files(app: Celery) -> list[tuple[str, str]]:
    """The SQLite files of the app's broker and result store (the embedded default or
    ``sqlite://`` URLs), as absolute paths: a relative path names a different file in every
    directory, and a worker only answers on the broker file it uses."""
    files: list[tuple[str, str]] = []
    transport = app.connection()  # unopened: reads nothing, only resolves the path
    if isinstance(transport, SQLiteTransport):
        files.append(("broker file", transport.path))
        backend = app.backend
        if isinstance(backend, SQLiteBackend):
            files.append(("results file", os.path.abspath(backend.path)))
    return files


__all__ = ["NO_REPLY", "control", "inspect", "status"]
