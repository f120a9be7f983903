"""``celeriac call NAME``: send a task by name and print its id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from celeriac.cli.base import (
    ISO8601,
    ISO8601_OR_FLOAT,
    JSON_ARRAY,
    JSON_OBJECT,
    CeleriacCommand,
    CeleriacOption,
    get_obj,
)


@click.command(cls=CeleriacCommand)
@click.argument("name")
@click.option(
    "-a",
    "--args",
    cls=CeleriacOption,
    type=JSON_ARRAY,
    default="[]",
    help_group="Calling Options",
    help="Positional arguments.",
)
@click.option(
    "-k",
    "--kwargs",
    cls=CeleriacOption,
    type=JSON_OBJECT,
    default="{}",
    help_group="Calling Options",
    help="Keyword arguments.",
)
@click.option(
    "--eta", cls=CeleriacOption, type=ISO8601, help_group="Calling Options", help="scheduled time."
)
@click.option(
    "--countdown",
    cls=CeleriacOption,
    type=float,
    help_group="Calling Options",
    help="eta in seconds from now.",
)
@click.option(
    "--expires",
    cls=CeleriacOption,
    type=ISO8601_OR_FLOAT,
    help_group="Calling Options",
    help="expiry time.",
)
@click.option(
    "--serializer",
    cls=CeleriacOption,
    default="json",
    help_group="Calling Options",
    help="task serializer.",
)
@click.option(
    "--queue", cls=CeleriacOption, help_group="Routing Options", help="custom queue name."
)
@click.option(
    "--exchange", cls=CeleriacOption, help_group="Routing Options", help="custom exchange name."
)
@click.option(
    "--routing-key", cls=CeleriacOption, help_group="Routing Options", help="custom routing key."
)
@click.pass_context
def call(
    ctx: click.Context,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    eta: datetime | None,
    countdown: float | None,
    expires: float | datetime | None,
    serializer: str,
    queue: str | None,
    exchange: str | None,
    routing_key: str | None,
) -> None:
    """Call a task by name."""
    obj = get_obj(ctx)
    given: dict[str, Any] = {
        "eta": eta,
        "countdown": countdown,
        "expires": expires,
        "queue": queue,
        "exchange": exchange,
        "routing_key": routing_key,
    }
    # Options left out stay the app's (routing table, defaults), as with send_task in Python.
    options = {key: value for key, value in given.items() if value is not None}
    sent = obj.app.send_task(name, args=args, kwargs=kwargs, serializer=serializer, **options)
    obj.echo(sent.id)
