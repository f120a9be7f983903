"""``celeriac result ID``: wait for a task's result and print it."""

from __future__ import annotations

import click

from celeriac.cli.base import CeleriacCommand, CeleriacOption, CLIError, get_obj
from celeriac.exceptions import ImproperlyConfigured, NotConfigured, OperationalError


@click.command(cls=CeleriacCommand)
@click.argument("task_id")
@click.option(
    "-t",
    "--task",
    cls=CeleriacOption,
    help_group="Result Options",
    help="Name of task (if custom backend).",
)
@click.option(
    "--traceback",
    cls=CeleriacOption,
    is_flag=True,
    help_group="Result Options",
    help="Show traceback instead.",
)
@click.pass_context
def result(ctx: click.Context, task_id: str, task: str | None, traceback: bool) -> None:
    """Print the return value for a given task id."""
    obj = get_obj(ctx)
    app = obj.app
    if task is not None and task not in app.tasks:
        raise CLIError(f"Task {task!r} is not registered with this app.", exit_code=2)
    task_result = app.AsyncResult(task_id)
    try:
        if traceback:
            obj.echo(task_result.traceback or "")
            return
        value = task_result.get()
    except NotConfigured as exc:
        # Results are disabled: say so and how to enable them.
        raise CLIError(str(exc), exit_code=1) from None
    except (ImproperlyConfigured, OperationalError):
        raise
    except Exception as exc:
        # The task failed and get() re-raised its exception.
        raise CLIError(
            f"Task {task_id} raised {exc!r} (use --traceback to see its traceback)"
        ) from None
    obj.echo(value)
