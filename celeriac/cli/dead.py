"""``celeriac dead list|replay|purge``: the dead-letter queues (beyond Celery)."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from celeriac.cli.base import (
    COMMA_SEPARATED_LIST,
    CLIContext,
    CLIError,
    flatten,
    get_obj,
    pluralize,
)
from celeriac.extras import deadletter

_QUEUES = click.option(
    "-Q",
    "--queues",
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help="Source queues whose dead letters to use (default: the app's queues).",
)


def _dead_queues(obj: CLIContext, queues: tuple[list[str], ...]) -> list[str]:
    app = obj.app
    if not app.conf.task_dead_letter_queue:
        raise CLIError(
            "Dead-lettering is off: set task_dead_letter_queue (for example '{queue}.dead').",
            exit_code=2,
        )
    sources = flatten(queues) or [q.name for q in app.default_queues()]
    return [name for s in sources if (name := deadletter.dead_queue_name(app, s))]


@click.group()
def dead() -> None:
    """Show, re-queue or delete messages that failed for good."""


@dead.command("list")
@_QUEUES
@click.option("-n", "--limit", type=int, default=None, help="Show at most this many.")
@click.option("--traceback", is_flag=True, help="Show each traceback.")
@click.pass_context
def list_command(
    ctx: click.Context, queues: tuple[list[str], ...], limit: int | None, traceback: bool
) -> None:
    """List dead messages (they stay in the queue)."""
    obj = get_obj(ctx)
    for name in _dead_queues(obj, queues):
        letters = deadletter.list_dead(obj.app, name, limit)
        obj.echo(f"{name}: {len(letters)} {pluralize(len(letters), 'message')}")
        for letter in letters:
            when = datetime.fromtimestamp(letter.time, timezone.utc).isoformat(timespec="seconds")
            obj.echo(
                f"  {letter.task_id}  {letter.task}{letter.args_repr}  {letter.reason} "
                f"at {when} on {letter.hostname or '?'}: {letter.exception}"
            )
            if traceback and letter.traceback:
                obj.echo("    " + letter.traceback.rstrip().replace("\n", "\n    "))


@dead.command()
@_QUEUES
@click.option("--id", "ids", multiple=True, help="Replay only this task id (repeatable).")
@click.pass_context
def replay(ctx: click.Context, queues: tuple[list[str], ...], ids: tuple[str, ...]) -> None:
    """Publish dead messages back to the queue they came from."""
    obj = get_obj(ctx)
    for name in _dead_queues(obj, queues):
        count = deadletter.replay(obj.app, name, ids or None)
        obj.echo(f"Replayed {count} {pluralize(count, 'message')} from {name}.")


@dead.command()
@_QUEUES
@click.option("-f", "--force", is_flag=True, help="Don't prompt for verification.")
@click.pass_context
def purge(ctx: click.Context, queues: tuple[list[str], ...], force: bool) -> None:
    """Delete every dead message (no undo)."""
    obj = get_obj(ctx)
    names = _dead_queues(obj, queues)
    if not force:
        click.confirm(f"Delete every message in {', '.join(names)}?", abort=True)
    for name in names:
        count = deadletter.purge(obj.app, name)
        obj.echo(f"Purged {count} {pluralize(count, 'message')} from {name}.")


__all__ = ["dead"]
