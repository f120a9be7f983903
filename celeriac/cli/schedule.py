"""``celeriac schedule list|add|remove|pause|resume|run-now``: the schedule store, changed
while beat runs (beyond Celery; needs ``beat_schedule_store``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from celeriac.beat.codec import schedule_from_doc
from celeriac.beat.store import ScheduleStore
from celeriac.beat.store_backends import store_for
from celeriac.cli.base import CLIError, get_obj
from celeriac.schedules import BaseSchedule, crontab, solar


@contextmanager
def _store(ctx: click.Context) -> Iterator[ScheduleStore]:
    app = get_obj(ctx).app
    store = store_for(app)
    if store is None:
        raise CLIError(
            "There is no schedule store: set beat_schedule_store = True (on the broker) or "
            "to a sqlite:///, redis:// or postgresql:// URL, and restart beat once.",
            exit_code=2,
        )
    try:
        yield store
    except KeyError as exc:
        raise CLIError(str(exc.args[0]), exit_code=1) from None
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc), exit_code=2) from None
    finally:
        store.close()


@click.group()
def schedule() -> None:
    """Show and change periodic tasks while beat runs (the schedule store)."""


@schedule.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List the entries: name, task, schedule, state, last run, runs."""
    obj = get_obj(ctx)
    with _store(ctx) as store:
        entries = store.entries()
    if not entries:
        obj.echo("No schedule entries.")
    for name in sorted(entries):
        entry = entries[name]
        state = "paused" if entry.paused else "active"
        last = entry.last_run_at.isoformat(timespec="seconds") if entry.last_run_at else "never"
        try:
            shown = repr(schedule_from_doc(entry.schedule))
        except ValueError as exc:
            shown = f"<invalid: {exc}>"
        obj.echo(
            f"{name}  {entry.task}{tuple(entry.args)!r}  {shown}  {state}  "
            f"last run {last}  runs {entry.total_run_count}"
        )


def _json(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be JSON ({exc})") from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"{what} must be a JSON {kind.__name__}, got {value!r}")
    return parsed


def _schedule(every: float | None, cron: str | None, sun: str | None) -> BaseSchedule | float:
    given = [x for x in (every, cron, sun) if x is not None]
    if len(given) != 1:
        raise click.UsageError("Give exactly one of --every, --crontab, --solar.")
    if every is not None:
        return every
    if cron is not None:
        return crontab.from_string(cron)
    event, _, where = str(sun).partition(",")
    lat, _, lon = where.partition(",")
    try:
        return solar(event, float(lat), float(lon))
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (write --solar EVENT,LAT,LON)") from None


@schedule.command()
@click.argument("name")
@click.argument("task")
@click.option("--every", type=float, help="Run every this many seconds.")
@click.option("--crontab", "cron", help="A cron line: 'minute hour day month weekday'.")
@click.option("--solar", "sun", help="A solar event: EVENT,LATITUDE,LONGITUDE.")
@click.option("-a", "--args", help="Positional arguments as a JSON list.")
@click.option("-k", "--kwargs", help="Keyword arguments as a JSON object.")
@click.option("--queue", help="Send to this queue.")
@click.option("--options", help="Other apply_async options as a JSON object.")
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    task: str,
    every: float | None,
    cron: str | None,
    sun: str | None,
    args: str | None,
    kwargs: str | None,
    queue: str | None,
    options: str | None,
) -> None:
    """Add an entry, or change one (its runs are kept)."""
    opts = _json(options, "--options", dict)
    if queue:
        opts["queue"] = queue
    with _store(ctx) as store:
        try:
            sched = _schedule(every, cron, sun)
        except ValueError as exc:
            raise CLIError(str(exc), exit_code=2) from None
        store.add(
            name, task, sched, _json(args, "--args", list), _json(kwargs, "--kwargs", dict), opts
        )
    get_obj(ctx).echo(
        f"{name}: {task} every {sched!r}"
        if isinstance(sched, float)
        else f"{name}: {task} {sched!r}"
    )


def _simple(verb: str, method: str, done: str, help: str) -> click.Command:
    @click.command(verb, help=help)
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with _store(ctx) as store:
            getattr(store, method)(name)
        get_obj(ctx).echo(f"{name}: {done}.")

    return command


schedule.add_command(_simple("remove", "remove", "removed", "Remove an entry."))
schedule.add_command(_simple("pause", "pause", "paused", "Stop sending an entry."))
schedule.add_command(_simple("resume", "resume", "resumed", "Send a paused entry again."))
schedule.add_command(
    _simple("run-now", "run_now", "sent at beat's next tick", "Send an entry once, now.")
)

__all__ = ["schedule"]
