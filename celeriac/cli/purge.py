"""``celeriac purge``: delete every waiting message from the app's queues."""

from __future__ import annotations

import click

from celeriac.cli.base import (
    COMMA_SEPARATED_LIST,
    CeleriacCommand,
    CeleriacOption,
    flatten,
    get_obj,
    pluralize,
)


@click.command(cls=CeleriacCommand)
@click.option(
    "-f",
    "--force",
    cls=CeleriacOption,
    is_flag=True,
    help_group="Purging Options",
    help="Don't prompt for verification.",
)
@click.option(
    "-Q",
    "--queues",
    cls=CeleriacOption,
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help_group="Purging Options",
    help="Comma separated list of queue names to purge.",
)
@click.option(
    "-X",
    "--exclude-queues",
    cls=CeleriacOption,
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help_group="Purging Options",
    help="Comma separated list of queues names not to purge.",
)
@click.pass_context
def purge(
    ctx: click.Context,
    force: bool,
    queues: tuple[list[str], ...],
    exclude_queues: tuple[list[str], ...],
) -> None:
    """Erase all messages from all known task queues.

    Warning:

        There's no undo operation for this command.
    """
    obj = get_obj(ctx)
    app = obj.app
    wanted = flatten(queues) or [queue.name for queue in app.default_queues()]
    excluded = set(flatten(exclude_queues))
    names = sorted(name for name in dict.fromkeys(wanted) if name not in excluded)
    if not names:
        return
    qnum = len(names)
    queues_headline = pluralize(qnum, "queue")
    if not force:
        click.confirm(
            "You're about to delete all waiting tasks from the queues: "
            f"{', '.join(names)}. There is no undo for this operation! Are you sure?",
            abort=True,
        )
    with app.connection() as conn:
        messages = sum(conn.purge(name) for name in names)
    if messages:
        obj.echo(
            f"Purged {messages} {pluralize(messages, 'message')} from "
            f"{qnum} known task {queues_headline}."
        )
    else:
        obj.echo(f"No messages purged from {qnum} {queues_headline}.")
