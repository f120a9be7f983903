"""``celeriac check``: a container probe; exit 0 when the local worker consumes, else 1.

The worker rewrites its liveness file every second while it consumes (and touches its pid
file): a worker that is gone, whose broker is unreachable, or whose loop is stuck while its
process and connection live, lets the file grow old, and the probe fails.
"""

from __future__ import annotations

import click

from celeriac.cli.base import CeleriacCommand, CLIError, get_obj
from celeriac.worker.liveness import MAX_AGE, Verdict, default_path, probe_file, probe_pidfile
from celeriac.worker.worker import default_nodename, node_format


@click.command(cls=CeleriacCommand)
@click.option(
    "-n",
    "--hostname",
    help="The worker's node name, as given to the worker (default: celery@<this host>).",
)
@click.option("--pidfile", help="Probe the worker holding this pid file instead.")
@click.option(
    "--liveness-file",
    help="The worker's liveness file (default: worker_liveness_file, else "
    "<temp dir>/celeriac-<node name>.alive).",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0.0, min_open=True),
    default=MAX_AGE,
    show_default=True,
    help="Seconds since the worker was last seen consuming before the probe fails.",
)
@click.pass_context
def check(
    ctx: click.Context,
    hostname: str | None,
    pidfile: str | None,
    liveness_file: str | None,
    max_age: float,
) -> None:
    """Probe the local worker: exit 0 if it consumes, 1 if not (liveness and readiness).

    \b
    $ celeriac -A proj check                  # the worker started without -n
    $ celeriac -A proj check -n w1@%h
    $ celeriac check --pidfile=/var/run/celery/w1.pid
    """
    obj = get_obj(ctx)
    nodename = default_nodename(hostname)
    verdict: Verdict
    if pidfile and not (liveness_file or hostname):
        verdict = probe_pidfile(node_format(pidfile, nodename), max_age)
    else:
        configured = obj.app.conf.worker_liveness_file if obj.app_spec or obj.instance else None
        path = liveness_file or configured or default_path(nodename)
        verdict = probe_file(node_format(str(path), nodename), max_age)
        if verdict.ok and pidfile:
            verdict = probe_pidfile(node_format(pidfile, nodename), max_age)
    if not verdict.ok:
        raise CLIError(verdict.line, exit_code=1)
    obj.echo(verdict.line)


__all__ = ["check"]
