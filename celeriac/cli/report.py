"""``celeriac report``: what to paste into a bug report (secrets masked)."""

from __future__ import annotations

import click

from celeriac.cli.base import CeleriacCommand, get_obj


@click.command(cls=CeleriacCommand)
@click.pass_context
def report(ctx: click.Context) -> None:
    """Show information useful to include in bug reports (passwords and keys masked)."""
    obj = get_obj(ctx)
    app = obj.app
    app.import_default_modules()
    obj.echo(app.bugreport())
