"""``celeriac beat``: run the periodic task scheduler in the foreground."""

from __future__ import annotations

import signal
from types import FrameType

import click

from celeriac.beat.service import Beat
from celeriac.cli.base import LOG_LEVEL, CeleriacCommand, CeleriacOption, CLIError, get_obj
from celeriac.cli.detach import claim_pidfile, detach_command
from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils import daemon
from celeriac.utils.log import setup_logging
from celeriac.utils.pidfile import release

_B = "Beat Options"


@click.command(cls=CeleriacCommand)
@click.option(
    "-s",
    "--schedule",
    cls=CeleriacOption,
    help_group=_B,
    help="Path to the state file (default: beat_schedule_filename, celerybeat-schedule).",
)
@click.option(
    "--max-interval",
    cls=CeleriacOption,
    help_group=_B,
    type=click.FloatRange(min=0, min_open=True),
    help="Longest sleep between checks of the schedule, in seconds (default 300).",
)
@click.option(
    "-l", "--loglevel", cls=CeleriacOption, help_group=_B, default="WARNING", type=LOG_LEVEL
)
@click.option(
    "-S",
    "--scheduler",
    cls=CeleriacOption,
    help_group=_B,
    hidden=True,
    help="Celery's scheduler class: celeriac beat has one (see beat_schedule_store).",
)
@click.option("-f", "--logfile", cls=CeleriacOption, help_group=_B, help="Log destination.")
@click.option("--pidfile", cls=CeleriacOption, help_group=_B, help="PID file path.")
@click.option(
    "--detach",
    cls=CeleriacOption,
    help_group=_B,
    is_flag=True,
    help="Run in the background (give --logfile and --pidfile: the output goes nowhere else).",
)
@click.option(
    "--workdir",
    cls=CeleriacOption,
    help_group=_B,
    type=click.Path(file_okay=False),
    help="With --detach: run in this directory (relative paths are read from it).",
)
@click.pass_context
def beat(
    ctx: click.Context,
    schedule: str | None,
    max_interval: float | None,
    loglevel: str,
    logfile: str | None,
    pidfile: str | None,
    detach: bool,
    workdir: str | None,
    scheduler: str | None,
) -> None:
    """Start the beat periodic task scheduler.

    \b
    Examples
    --------

    \b
    $ celeriac -A proj beat -l INFO
    $ celeriac -A proj beat -s /var/run/celeriac/beat-schedule --max-interval 10
    $ celeriac -A proj beat --detach --logfile beat.log --pidfile beat.pid
    """
    if scheduler:
        raise CLIError(
            f"celeriac beat -S {scheduler}: celeriac beat has one scheduler and no scheduler "
            "classes. For entries changed at run time (what django-celery-beat and RedBeat "
            "do), set beat_schedule_store = True and use `celeriac schedule`.",
            exit_code=2,
        )
    obj = get_obj(ctx)
    app = obj.app
    if detach:  # this same command again, as a daemon in --workdir; back once it runs
        detach_command(obj.echo, "beat", logfile=logfile, pidfile=pidfile, workdir=workdir)
        ctx.exit(0)
    setup_logging(loglevel, logfile)
    service = Beat(app, schedule_filename=schedule, max_interval=max_interval)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        service.stop()

    claim_pidfile(pidfile)
    try:
        daemon.notify_started()  # a detached beat: the command that started it may return
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            service.run()
        except ImproperlyConfigured as exc:
            raise CLIError(str(exc), exit_code=1) from None
    finally:
        if pidfile:
            release(pidfile)
