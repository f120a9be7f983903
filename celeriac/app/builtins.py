"""Tasks every app has, named as Celery names them: ``celery.backend_cleanup`` (a Celery beat
schedule can send it), ``celery.accumulate`` (``Task.replace`` with a group) and the canvas's
``celery.map``, ``celery.starmap`` and ``celery.chunks`` (a Celery client's ``add.map()``,
``add.starmap()`` and ``add.chunks()`` are messages to these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.app.replace import ACCUMULATE
from celeriac.canvas import maybe_signature
from celeriac.canvas.maps import CHUNKS_TASK, MAP_TASK, STARMAP_TASK, chunks

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

BACKEND_CLEANUP = "celery.backend_cleanup"


def add_builtin_tasks(app: Celery) -> None:
    """Register the builtin tasks on ``app``."""

    def backend_cleanup() -> int:
        """Delete results older than ``result_expires``; return how many were removed."""
        return app.backend.cleanup()

    # The result of a clean-up is not worth a row in the store it is cleaning.
    app.task(name=BACKEND_CLEANUP, ignore_result=True)(backend_cleanup)

    def task_of(sig: Any) -> Task[Any, Any]:
        found = maybe_signature(sig, app=app)
        if found is None:
            raise ValueError("celery.map / celery.starmap got no task signature (task=None)")
        return found.type

    def xmap(task: Any, it: list[Any]) -> list[Any]:
        """Call ``task`` once per item, here, in order: ``[task(x) for x in it]``."""
        run = task_of(task)
        return [run(item) for item in it]

    def xstarmap(task: Any, it: list[Any]) -> list[Any]:
        """Call ``task`` once per item, unpacked: ``[task(*x) for x in it]``."""
        run = task_of(task)
        return [run(*item) for item in it]

    def chunk_task(task: Any, it: list[Any], n: int) -> Any:
        """Send ``it`` as a group of ``celery.starmap`` messages of ``n`` items each."""
        return chunks.apply_chunks(task, it, n, app=app)

    def accumulate(*args: Any, **kwargs: Any) -> Any:
        """The body a group replacing a task gets: its results (``index=0``: the list)."""
        index = kwargs.get("index")
        return args[index] if index is not None else args

    app.task(name=ACCUMULATE)(accumulate)
    app.task(name=MAP_TASK)(xmap)
    app.task(name=STARMAP_TASK)(xstarmap)
    app.task(name=CHUNKS_TASK)(chunk_task)


__all__ = ["BACKEND_CLEANUP", "add_builtin_tasks"]
