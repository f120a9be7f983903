"""``xmap``, ``xstarmap`` and ``chunks``: many calls of one task in few messages.

As in Celery, ``xmap(add.s(), items)`` is one message to the builtin task ``celery.map``
(``kwargs={"task": <signature>, "it": [...]}``) that calls the task in the worker once per
item, in order, and returns the list of results; ``xstarmap`` (``celery.starmap``) unpacks
each item as arguments. ``chunks(add.s(), items, n)`` is a group of ``xstarmap`` messages of
``n`` items each. None of them carries a ``subtask_type`` (Celery gives them none): inside a
message they are plain signatures of the builtin tasks, which every app registers
(``app/builtins.py``), so a Celery client's chunks run on a celeriac worker and the reverse.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac.canvas.group import group
from celeriac.canvas.signature import Signature, maybe_signature

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

MAP_TASK = "celery.map"
STARMAP_TASK = "celery.starmap"
CHUNKS_TASK = "celery.chunks"


def _task_signature(task: Signature | Task[Any, Any] | Mapping[str, Any]) -> Signature:
    if isinstance(task, (Signature, Mapping)):
        sig = maybe_signature(task)
        assert sig is not None
        return sig
    return task.s()


def _items(it: Iterable[Any], what: str) -> list[Any]:
    if isinstance(it, (str, bytes, Mapping)) or not isinstance(it, Iterable):
        raise TypeError(
            f"{what}: the items must be a list, tuple or other iterable of arguments, not "
            f"{type(it).__name__}; write add.map([1, 2, 3]) or add.chunks(zip(a, b), 10)"
        )
    return list(it)


class _basemap(Signature):
    """One message of the builtin ``task_name``: ``{"task": <signature>, "it": [...]}``."""

    task_name: ClassVar[str]

    def __init__(
        self,
        task: Signature | Task[Any, Any] | Mapping[str, Any],
        it: Iterable[Any],
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        sig = _task_signature(task)
        items = _items(it, f"{self.task_name}({sig.task})")
        super().__init__(
            self.task_name,
            (),
            {"task": sig, "it": items},
            options,
            immutable=True,
            app=app if app is not None else sig._app,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kwargs = d.get("kwargs") or {}
        return cls(kwargs["task"], kwargs["it"], app=app, **(d.get("options") or {}))

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the one message (a map takes no partial arguments: it is immutable)."""
        options = {k: v for k, v in options.items() if v is not None}
        _, _, merged = self._merge(options=options)
        body = {"task": self.kwargs["task"], "it": list(self.kwargs["it"])}
        return self._sender()((), body, **merged)


class xmap(_basemap):
    """``add.map([1, 2, 3])``: ``[add(x) for x in items]`` in one worker, in order."""

    task_name = MAP_TASK

    def __repr__(self) -> str:
        return f"[{self.kwargs['task'].task}(x) for x in {_short(self.kwargs['it'])}]"


class xstarmap(_basemap):
    """``add.starmap([(1, 2), (3, 4)])``: ``[add(*x) for x in items]`` in one worker."""

    task_name = STARMAP_TASK

    def __repr__(self) -> str:
        return f"[{self.kwargs['task'].task}(*x) for x in {_short(self.kwargs['it'])}]"


class chunks(Signature):
    """``add.chunks(zip(a, b), 10)``: the items in parts of ``n``, one ``xstarmap`` message
    per part, sent as a group (``.group()`` gives that group to compose further)."""

    def __init__(
        self,
        task: Signature | Task[Any, Any] | Mapping[str, Any],
        it: Iterable[Any],
        n: int,
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        sig = _task_signature(task)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"chunks({sig.task}): the chunk size must be a whole number above 0, not "
                f"{n!r}; write add.chunks(items, 10)"
            )
        items = _items(it, f"chunks({sig.task})")
        super().__init__(
            CHUNKS_TASK,
            (),
            {"task": sig, "it": items, "n": n},
            options,
            immutable=True,
            app=app if app is not None else sig._app,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kwargs = d.get("kwargs") or {}
        options = d.get("options") or {}
        return cls(kwargs["task"], kwargs["it"], kwargs["n"], app=app, **options)

    def __call__(self, *args: Any, **options: Any) -> Any:
        """Send the chunks (as Celery: calling a ``chunks`` sends it)."""
        return self.apply_async(**options)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply_async(args, kwargs, **options)

    def group(self) -> group:
        """The group of ``xstarmap`` parts, ``n`` items each (the last may be shorter)."""
        task, n = self.kwargs["task"], int(self.kwargs["n"])
        parts = (xstarmap(task, part, app=self._app) for part in _split(self.kwargs["it"], n))
        return group(parts, app=self._app)

    @classmethod
    def apply_chunks(
        cls, task: Signature | Mapping[str, Any], it: Iterable[Any], n: int, app: Celery
    ) -> Any:
        """Send ``chunks(task, it, n)`` (the builtin ``celery.chunks`` does this)."""
        return cls(task, it, n, app=app)()


def _split(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(items)
    while part := list(islice(it, n)):
        yield part


def _short(items: Any) -> str:
    text = repr(items)
    return text if len(text) <= 100 else text[:97] + "..."


__all__ = ["CHUNKS_TASK", "MAP_TASK", "STARMAP_TASK", "chunks", "xmap", "xstarmap"]
