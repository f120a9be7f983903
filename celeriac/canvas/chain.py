"""``chain``: tasks run one after another, each given the previous one's return value.

The client publishes only the first task; the others travel in its message as
``embed.chain``, in reverse order (the next step last), each with its task id already chosen,
exactly as Celery 5.7 writes them. The worker that finishes a step publishes the next
(:mod:`celeriac.execution.callbacks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import TYPES, Signature, maybe_list, maybe_signature
from celeriac.result import allow_join_result

if TYPE_CHECKING:
    from celeriac.app.base import Celery


class chain(Signature):
    """``chain(add.s(1, 2), add.s(3))`` (also ``add.s(1, 2) | add.s(3)``)."""

    kind = "chain"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            tasks = tuple(tasks[0])  # chain([sig, sig]) or a generator
        steps = [maybe_signature(t, app=app) for t in tasks]
        super().__init__(
            "celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        tasks = (d.get("kwargs") or {}).get("tasks") or []
        sig = cls(
            *[maybe_signature(t, app=app) for t in tasks], app=app, **(d.get("options") or {})
        )
        if d.get("args"):
            sig.args = d["args"]
        sig.set_immutable(bool(d.get("immutable")))
        return sig

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs.setdefault("tasks", [])
        return tasks

    @tasks.setter
    def tasks(self, value: list[Signature]) -> None:
        self.kwargs["tasks"] = list(value)

    def _fallback_app(self) -> Celery:
        if self.tasks and self.tasks[0]._app is not None:
            return self.tasks[0]._app
        return super()._fallback_app()

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        sig = super().clone(args, kwargs, **opts)
        sig.kwargs["tasks"] = [maybe_signature(t, app=self._app, clone=True) for t in self.tasks]
        return sig

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps; the chain's ``link`` goes to the last, ``link_error`` to all."""
        tasks = [t.clone() for t in self.tasks]
        for callback in maybe_list(self.options.get("link")) or []:
            tasks[-1].link(callback)
        for errback in maybe_list(self.options.get("link_error")) or []:
            for task in tasks:
                task.link_error(errback)
        return tasks

    def __or__(self, other: Any) -> Any:
        if isinstance(other, chain):
            return chain(*self.unchain_tasks(), *other.unchain_tasks(), app=self._app)
        if isinstance(other, Signature):
            return chain(*self.unchain_tasks(), other, app=self._app)
        return NotImplemented

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    # -- running ---------------------------------------------------------------------------
    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Publish the first step; return the last step's result (``.parent`` goes back)."""
        app = self.app
        if app.conf.task_always_eager:
            with allow_join_result():
                return self.apply(args, kwargs, **options)
        return self.run(args or (), kwargs or {}, **dict(self.options, **options))

    def run(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        group_id: str | None = None,
        chord: Signature | None = None,
        task_id: str | None = None,
        link: Any = None,
        link_error: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
        **options: Any,
    ) -> Any:
        args = tuple(args) + self.args if args and not self.immutable else self.args
        tasks, results = self.prepare_steps(
            args, kwargs, root_id, link_error, task_id, group_id, chord, group_index
        )
        if not results:
            return None
        if link:
            for callback in maybe_list(link) or []:
                tasks[0].link(callback)
        first = tasks.pop()
        if tasks:
            options["chain"] = tasks
        if parent_id:
            options["parent_id"] = parent_id
        first.apply_async(**options)
        return results[0]

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        tasks, results = self.prepare_steps(
            self.args, {}, root_id, None, _id, group_id, chord, group_index
        )
        self.kwargs["tasks"] = list(reversed(tasks))
        return results[0] if results else None

    def prepare_steps(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        root_id: str | None,
        link_error: Any,
        last_task_id: str | None,
        group_id: str | None,
        chord_body: Signature | None,
        group_index: int | None,
    ) -> tuple[list[Signature], list[Any]]:
        """Frozen copies of the steps and their results, both last step first (Celery's
        order: the message's ``chain`` is this list without its last item, the first step).
        A group followed by a step becomes a chord; nested chains are flattened."""
        app = self.app
        steps = _flatten(self.tasks, app)
        group_cls, chord_cls = TYPES["group"], TYPES["chord"]
        tasks: list[Signature] = []
        results: list[Any] = []
        prev_task: Signature | None = None
        prev_res: Any = None
        while steps:
            task = steps.pop()
            is_first, is_last = not steps, not tasks
            task = task.clone(args, kwargs) if is_first else task.clone()
            if isinstance(task, group_cls) and prev_task is not None:
                tasks.pop()
                results.pop()
                task = chord_cls(
                    task, body=prev_task, task_id=prev_res.id, root_id=root_id, app=app
                )
                prev_task = tasks[-1] if tasks else None
                prev_res = results[-1] if results else None
                is_last = not tasks
            if is_last:
                res = task.freeze(
                    last_task_id,
                    root_id=root_id,
                    group_id=group_id,
                    chord=chord_body,
                    group_index=group_index,
                )
            else:
                res = task.freeze(root_id=root_id)
            if prev_res is not None and getattr(prev_res, "parent", None) is None:
                prev_res.parent = res
            for errback in maybe_list(link_error) or []:
                task.link_error(errback)
            tasks.append(task)
            results.append(res)
            prev_task, prev_res = task, res
            if isinstance(task, chord_cls):
                node = res
                while node.parent is not None:
                    node = node.parent
                prev_res = node
        return tasks, results

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run every step here, one after another (eager)."""
        last: Any = None
        fargs: Sequence[Any] = args or ()
        fkwargs: Mapping[str, Any] = kwargs or {}
        for task in _flatten(self.tasks, self.app):
            res = task.clone().apply(
                (last.get(),) if last is not None else fargs, fkwargs, **options
            )
            res.parent, last, fargs, fkwargs = last, res, (), {}
        return last

    def __repr__(self) -> str:
        if not self.tasks:
            return "<chain: empty>"
        return " | ".join(repr(t) for t in self.tasks)


def _flatten(tasks: Sequence[Any], app: Celery) -> list[Signature]:
    """The steps with nested chains spliced in (their links kept, as Celery does)."""
    out: list[Signature] = []
    for task in tasks:
        sig = maybe_signature(task, app=app)
        assert sig is not None
        if isinstance(sig, chain):
            out.extend(_flatten(sig.unchain_tasks(), app))
        else:
            out.append(sig)
    return out


def _type(kind: str) -> Any:
    return TYPES[kind]


__all__ = ["chain"]
