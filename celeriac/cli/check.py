"""``celeriac check``: a container probe; exit 0 when the local worker consumes, else 1.

A worker started with ``--liveness-file PATH`` (or the ``worker_liveness_file`` setting)
rewrites that file every second while it consumes, and touches its ``--pidfile`` if it has
one: a worker that is gone, whose broker is unreachable, or whose loop is stuck while its
process and connection live, lets the file grow old, and the probe fails. The probe reads
``--liveness-file``, else the app's ``worker_liveness_file``, else probes ``--pidfile``; it
expands ``%n``/``%h`` with ``-n`` as the worker did.
"""

from __future__ import annotations

import click

from celeriac.cli.base import CeleriacCommand, CLIError, get_obj
from celeriac.worker.liveness import MAX_AGE, Verdict, probe_file, probe_pidfile
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
    help="The worker's liveness file, as given to the worker (default: the app's "
    "worker_liveness_file).",
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
    $ celeriac -A proj check     # the app sets worker_liveness_file
    $ celeriac check --liveness-file=/run/celeriac/%n.alive -n w1@%h
    $ celeriac check --pidfile=/var/run/celery/w1.pid
    """
    obj = get_obj(ctx)
    nodename = default_nodename(hostname)
    verdict: Verdict
    configured = obj.app.conf.worker_liveness_file if obj.app_spec or obj.instance else None
    path = liveness_file or configured
    if path:
        verdict = probe_file(node_format(str(path), nodename), max_age)
        if verdict.ok and pidfile:
            verdict = probe_pidfile(node_format(pidfile, nodename), max_age)
    elif pidfile:
        verdict = probe_pidfile(node_format(pidfile, nodename), max_age)
    else:
        raise CLIError(
            "Nothing to probe: start the worker with --liveness-file PATH (or set "
            "worker_liveness_file) and give check the same path (--liveness-file, or -A with "
            "that setting), or probe the worker's --pidfile.",
            exit_code=2,
        )
    if not verdict.ok:
        raise CLIError(verdict.line, exit_code=1)
    obj.echo(verdict.line)


__all__ = ["check"]
