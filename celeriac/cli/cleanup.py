"""``celeriac cleanup``: delete stored results older than ``result_expires``.

The command form of the built-in ``celery.backend_cleanup`` task, for cron or a one-off run
without a worker (workers also clean up hourly on their own).
"""

from __future__ import annotations

import click

from celeriac.backends.disabled import DisabledBackend
from celeriac.cli.base import CeleriacCommand, CeleriacOption, get_obj, pluralize
from celeriac.exceptions import ImproperlyConfigured


@click.command(cls=CeleriacCommand)
@click.option(
    "--expires",
    cls=CeleriacOption,
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help_group="Cleanup Options",
    help="Remove results older than this many seconds (default: result_expires).",
)
@click.pass_context
def cleanup(ctx: click.Context, expires: float | None) -> None:
    """Delete results older than result_expires from the result backend."""
    obj = get_obj(ctx)
    app = obj.app
    if expires is not None:
        app.conf.result_expires = expires
    backend = app.backend
    if isinstance(backend, DisabledBackend):
        raise ImproperlyConfigured(
            "No result backend to clean up: set result_backend (or --result-backend)."
        )
    if not backend.expires:
        obj.echo("result_expires is not set: results never expire, nothing removed.")
        return
    removed = backend.cleanup()
    obj.echo(
        f"Removed {removed} expired {pluralize(removed, 'result')} "
        f"(older than {backend.expires:g} s) from {backend.as_uri()}."
    )
