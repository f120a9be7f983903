"""``celeriac worker``: start a worker with Celery's options."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from celeriac.cli.base import (
    COMMA_SEPARATED_LIST,
    LOG_LEVEL,
    CeleriacCommand,
    CeleriacOption,
    CLIError,
    flatten,
    get_obj,
)
from celeriac.cli.detach import claim_pidfile, detach_command
from celeriac.cli.not_yet import refuse_worker_options
from celeriac.utils import daemon
from celeriac.utils.log import process_format
from celeriac.utils.pidfile import release
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.worker import Worker, default_nodename, node_format

if TYPE_CHECKING:
    from celeriac.app.base import Celery


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _concurrency(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """An integer, or ``auto``/0/nothing for the configured default (the CPU count)."""
    if value is None or value.strip().lower() in ("", "auto", "0"):
        return None
    try:
        parsed = int(value)
    except ValueError:
        parsed = -1
    if parsed < 0:
        raise click.BadParameter(f"must be a non-negative integer or 'auto', got {value!r}")
    return parsed


def _option(*decls: str, group: str, **kwargs: Any) -> Callable[[_Fn], _Fn]:
    return click.option(*decls, cls=CeleriacOption, help_group=group, **kwargs)


_W, _P, _Q, _F, _D = (
    "Worker Options",
    "Pool Options",
    "Queue Options",
    "Features",
    "Daemonization Options",
)


@click.command(cls=CeleriacCommand)
@_option(
    "-n",
    "--hostname",
    group=_W,
    help="Set custom hostname (e.g., 'w1@%h').  "
    "Expands: %h (hostname), %n (name) and %d, (domain).",
)
@_option(
    "-S",
    "--statedb",
    group=_W,
    type=click.Path(),
    help="Path to the state database (keeps revoked task ids across restarts).",
)
@_option("-l", "--loglevel", group=_W, default="WARNING", type=LOG_LEVEL, help="Logging level.")
@_option(
    "-O",
    "--optimization",
    group=_W,
    default="default",
    type=click.Choice(("default", "fair")),
    help="Accepted for compatibility with Celery; no effect.",
)
@_option(
    "--prefetch-multiplier",
    group=_W,
    type=click.IntRange(min=0),
    metavar="<prefetch multiplier>",
    help="Set custom prefetch multiplier value for this worker instance.",
)
@_option(
    "-c",
    "--concurrency",
    group=_P,
    metavar="<concurrency>",
    callback=_concurrency,
    help="Number of child processes (prefork), threads (threads) or concurrent tasks "
    "(asyncio). The default is the number of CPUs available on your system.",
)
@_option(
    "-P",
    "--pool",
    group=_P,
    help="Pool implementation: prefork (default), threads, solo or asyncio.",
)
@_option(
    "--autoscale",
    group=_P,
    metavar="<MAX>,<MIN>",
    help="Enable autoscaling: grow the pool up to MAX when busy, shrink it down to MIN "
    "when idle (prefork, threads).",
)
@_option(
    "-E",
    "--task-events",
    "--events",
    group=_P,
    is_flag=True,
    default=None,
    help="Send task events (task-received, task-started, task-succeeded, ...) for "
    "`celeriac events` and other event receivers.",
)
@_option(
    "--time-limit", group=_P, type=float, help="Enables a hard time limit (in seconds) for tasks."
)
@_option(
    "--soft-time-limit",
    group=_P,
    type=float,
    help="Enables a soft time limit (in seconds) for tasks.",
)
@_option(
    "--max-tasks-per-child",
    group=_P,
    type=int,
    help="Maximum number of tasks a pool worker can execute before "
    "it's terminated and replaced by a new worker.",
)
@_option(
    "--max-memory-per-child",
    group=_P,
    type=int,
    help="Maximum amount of resident memory, in KiB, that may be consumed by a child process "
    "before it will be replaced by a new one.",
)
@_option(
    "--purge",
    "--discard",
    group=_Q,
    is_flag=True,
    help="Purges all waiting tasks before the worker starts.",
)
@_option(
    "-Q",
    "--queues",
    group=_Q,
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help="Comma separated list of queues to consume from.",
)
@_option(
    "-X",
    "--exclude-queues",
    group=_Q,
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help="Comma separated list of queues not to consume from.",
)
@_option(
    "-I",
    "--include",
    group=_Q,
    type=COMMA_SEPARATED_LIST,
    multiple=True,
    help="Comma separated list of additional modules to import.",
)
@_option(
    "--without-gossip",
    group=_F,
    is_flag=True,
    help="Accepted for compatibility with Celery; no effect (celeriac has no gossip).",
)
@_option(
    "--without-mingle",
    group=_F,
    is_flag=True,
    help="Accepted for compatibility with Celery; no effect (celeriac has no mingle).",
)
@_option(
    "--without-heartbeat",
    group=_F,
    is_flag=True,
    help="Send no worker-online / heartbeat / offline events.",
)
@_option(
    "--heartbeat-interval",
    group=_F,
    type=float,
    help="Seconds between the worker's heartbeat events (default 2.0).",
)
@_option(
    "-B",
    "--beat",
    group=_F,
    is_flag=True,
    help="Also run beat, the periodic task scheduler, in this worker.",
)
@_option(
    "-s",
    "--schedule-filename",
    "--schedule",
    group=_F,
    help="Beat's state file with -B (default: beat_schedule_filename, celerybeat-schedule).",
)
@_option(
    "-D",
    "--detach",
    group=_D,
    is_flag=True,
    help="Start worker as a background process (a daemon); exits once it has started.",
)
@_option(
    "-f",
    "--logfile",
    group=_D,
    help="Log destination; defaults to stderr. Expands %n (node name), %h (host), "
    "%d (domain), %i (process index: 0 in the main process, 1, 2, ... in prefork children, "
    "which then log to files of their own) and %I (-1, -2, ...; empty in the main process).",
)
@_option(
    "--pidfile",
    group=_D,
    help="PID file path (expanded as --logfile); defaults to no PID file. A stale one "
    "(its process gone) is replaced.",
)
@_option(
    "--liveness-file",
    group=_D,
    help="Beyond Celery: rewrite this file every second while consuming, for `celeriac "
    "check` (expanded as --logfile; the worker_liveness_file setting); removed on a clean "
    "stop. Default: none.",
)
@_option("--uid", group=_D, help="User id, or user name, of the worker process.")
@_option("--gid", group=_D, help="Group id, or group name, of the worker process.")
@_option(
    "--umask",
    group=_D,
    help="Umask of the detached worker (octal with a leading 0, e.g. 022).",
)
@_option("--executable", group=_D, help="The Python executable a detached worker runs.")
@refuse_worker_options
@click.pass_context
def worker(
    ctx: click.Context,
    hostname: str | None,
    statedb: str | None,
    loglevel: str,
    optimization: str,
    prefetch_multiplier: int | None,
    concurrency: int | None,
    pool: str | None,
    autoscale: str | None,
    task_events: bool | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    purge: bool,
    queues: tuple[list[str], ...],
    exclude_queues: tuple[list[str], ...],
    include: tuple[list[str], ...],
    without_gossip: bool,
    without_mingle: bool,
    without_heartbeat: bool,
    beat: bool,
    schedule_filename: str | None,
    heartbeat_interval: float | None,
    detach: bool,
    logfile: str | None,
    pidfile: str | None,
    liveness_file: str | None,
    uid: str | None,
    gid: str | None,
    umask: str | None,
    executable: str | None,
) -> None:
    """Start worker instance.

    \b
    Examples
    --------

    \b
    $ celeriac --app=proj worker -l INFO
    $ celeriac -A proj worker -l INFO -Q hipri,lopri
    $ celeriac -A proj worker --concurrency=4
    $ celeriac -A proj worker -P threads -c 16
    $ celeriac -A proj worker --detach --pidfile=%n.pid --logfile=%n%I.log

    \b
    $ celeriac -A proj worker -B -l INFO   (with beat, the periodic task scheduler)

    \b
    Not in celeriac yet (each exits with what to use instead): --disable-prefetch,
    --pool-start-method.
    """
    # -O, gossip and mingle have no counterpart yet: accepted so scripts keep working.
    del optimization, without_gossip, without_mingle
    obj = get_obj(ctx)
    try:
        bounds = parse_autoscale(autoscale) if autoscale else None
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    app = obj.app
    _apply_settings(
        app,
        task_events=task_events,
        statedb=statedb,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child=max_memory_per_child,
        include=flatten(include),
        liveness_file=liveness_file,
    )
    names = _queue_names(app, flatten(queues), set(flatten(exclude_queues)))
    _check_broker(app)
    nodename = default_nodename(hostname)
    # %i / %I stay in the log file's name: each pool process expands its own index.
    logfile = node_format(logfile, nodename, index=None) if logfile else None
    pidfile = node_format(pidfile, nodename) if pidfile else None
    if detach:
        detach_command(
            obj.echo,
            "worker",
            logfile=process_format(logfile) if logfile else None,
            pidfile=pidfile,
            uid=uid,
            gid=gid,
            umask=umask,
            executable=executable,
        )
        ctx.exit(0)
    try:
        daemon.drop_privileges(uid, gid)
    except (daemon.DetachError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if purge:
        _purge(obj.echo, app, names)

    claim_pidfile(pidfile)
    try:
        try:
            instance = Worker(
                app,
                hostname=hostname,
                concurrency=concurrency,
                pool=pool,
                queues=names,
                loglevel=loglevel,
                logfile=logfile,
                prefetch_multiplier=prefetch_multiplier,
                without_banner=obj.quiet,
                install_signal_handlers=True,
                beat=beat,
                schedule_filename=schedule_filename,
                without_heartbeat=without_heartbeat,
                heartbeat_interval=heartbeat_interval,
                pidfile=pidfile,
                autoscale=bounds,
            )
        except ValueError as exc:
            # The worker validates -P and friends against its own tables.
            raise CLIError(str(exc), exit_code=2) from None
        daemon.notify_started()  # a detached worker: the command that started it may return
        code = instance.start()
    finally:
        if pidfile:
            release(pidfile)
    ctx.exit(code)


def _apply_settings(
    app: Celery, *, task_events: bool | None, include: list[str], **values: Any
) -> None:
    if task_events:
        app.conf.worker_send_task_events = True
    settings = {
        "worker_state_db": values["statedb"],
        "task_time_limit": values["time_limit"],
        "task_soft_time_limit": values["soft_time_limit"],
        "worker_max_tasks_per_child": values["max_tasks_per_child"],
        "worker_max_memory_per_child": values["max_memory_per_child"],
        "worker_liveness_file": values["liveness_file"],
    }
    for name, value in settings.items():
        if value is not None:
            app.conf[name] = value
    if include:
        app.conf.include = [*app.conf.include, *include]


def _queue_names(app: Celery, queues: list[str], excluded: set[str]) -> list[str] | None:
    """-Q (else every default queue when -X is given) minus -X; None: the worker's default."""
    if not excluded:
        return queues or None
    base = queues or [queue.name for queue in app.default_queues()]
    kept = [name for name in base if name not in excluded]
    if not kept:
        raise CLIError("-X excludes every queue: the worker would consume nothing.", exit_code=2)
    return kept


def _check_broker(app: Celery) -> None:
    """Build (not open) the transport and backend so a bad URL fails before the banner."""
    app.connection()
    app.backend  # noqa: B018 - building it is the check


def _purge(echo: Any, app: Celery, names: list[str] | None) -> None:
    targets = names or [queue.name for queue in app.default_queues()]
    with app.connection() as conn:
        count = sum(conn.purge(name) for name in targets)
    echo(f"Purged {count} {'message' if count == 1 else 'messages'} from {len(targets)} queue(s).")
