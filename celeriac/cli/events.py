"""``celeriac events``: follow the cluster's events (``--dump`` prints every event)."""

from __future__ import annotations

import threading

import click

from celeriac.cli.base import CeleriacCommand, CeleriacOption, CLIError, get_obj
from celeriac.events.dumper import Dumper
from celeriac.events.view import render

_G = "Events Options"


@click.command(cls=CeleriacCommand)
@click.option(
    "-d", "--dump", cls=CeleriacOption, is_flag=True, help_group=_G, help="Dump events to stdout."
)
@click.option(
    "-F",
    "--frequency",
    "--freq",
    cls=CeleriacOption,
    type=float,
    default=1.0,
    help_group=_G,
    help="Seconds between redraws of the live view.",
)
@click.option(
    "-c",
    "--camera",
    cls=CeleriacOption,
    hidden=True,
    help_group=_G,
    help="Not in celeriac (snapshot cameras).",
)
@click.pass_context
def events(ctx: click.Context, dump: bool, frequency: float, camera: str | None) -> None:
    """Event-stream utilities: a live text view of workers and tasks, or --dump."""
    if camera:
        raise CLIError("celeriac events has no snapshot cameras (--camera)", exit_code=2)
    obj = get_obj(ctx)
    app = obj.app
    if dump:
        dumper = Dumper(lambda line: click.echo(line))
        click.echo("-> events: Starting capture...")
        with app.events.Receiver(app.connection(), handlers={"*": dumper.on_event}) as receiver:
            try:
                receiver.capture(limit=None, timeout=None, wakeup=True)
            except KeyboardInterrupt:
                return
        return
    state = app.events.State()
    receiver = app.events.Receiver(app.connection(), handlers={"*": state.event})
    receiver.subscribe()
    thread = threading.Thread(target=receiver.capture, name="events", daemon=True)
    thread.start()
    stop = threading.Event()
    try:
        while not stop.wait(frequency):
            click.echo(render(state) + "\n")
    except KeyboardInterrupt:
        pass
    finally:
        receiver.should_stop = True
        thread.join(2.0)
        receiver.close()


__all__ = ["events"]
