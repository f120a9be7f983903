"""``Task.replace(sig)``: the signature that takes a running task's place (Celery's rules).

The replacement inherits the task's id (so results already handed out find its value), its
callbacks and errbacks, its place in a group or chord (``group_id``, ``group_index``,
``chord``: the replacement reports the chord part) and the rest of its chain (appended, the
steps keeping their ids). A group is made a chord with ``celery.accumulate`` as its body, so
the task's value is the group's list of results. Each replacement counts one more
``replaced_task_nesting``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.canvas.chain import chain
from celeriac.canvas.group import group
from celeriac.canvas.signature import Signature, maybe_list, signature
from celeriac.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from celeriac.app.task import Task

ACCUMULATE = "celery.accumulate"


def replacement(task: Task[Any, Any], sig: Signature) -> Signature:
    """``sig``, frozen with ``task``'s id and carrying what ``task`` was still to do."""
    if not isinstance(sig, Signature):
        raise TypeError(
            f"{task.name}.replace() takes a signature (add.s(1, 2), a chain or a group), "
            f"not {type(sig).__name__}"
        )
    request, app = task.request, task.app
    if "chord" in sig.options:
        raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
    if isinstance(sig, chain) and not sig.tasks:
        raise ImproperlyConfigured("Cannot replace with an empty chain")
    accumulate = app.tasks[ACCUMULATE]
    if isinstance(sig, group):
        sig = sig | accumulate.s(index=0)  # a chord: the group's results are the value
    if isinstance(sig, chain) and isinstance(sig.tasks[-1], group):
        sig.tasks = [*sig.tasks[:-1], sig.tasks[-1] | accumulate.s(index=0)]
    for callback in maybe_list(request.callbacks) or []:
        sig.link(callback)
    for errback in maybe_list(request.errbacks) or []:
        sig.link_error(errback)
    if isinstance(sig, chain) and "link" in sig.options:
        # the callbacks run after the chain's last step (and only there)
        last = sig.tasks[-1]
        for callback in maybe_list(sig.options.pop("link")) or []:
            last.link(callback)
    sig.freeze(request.id)
    nesting = request.replaced_task_nesting + 1
    inherited = {
        "chord": request.chord,
        "group_id": request.group,
        "group_index": request.group_index,
        "root_id": request.root_id,
    }
    sig.set(replaced_task_nesting=nesting, **{k: v for k, v in inherited.items() if v is not None})
    if isinstance(sig, chain):
        for step in sig.tasks:
            step.set(replaced_task_nesting=nesting)
    for step in reversed(request.chain or []):
        rest = signature(step, app=app)
        rest.set(replaced_task_nesting=nesting)
        sig = sig | rest
    return sig


__all__ = ["ACCUMULATE", "replacement"]
