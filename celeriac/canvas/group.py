"""``group``: tasks run in parallel; their results come back together as a ``GroupResult``.

A group of N is N independent messages, each with the headers ``group=<group id>`` and
``group_index=i`` (vector ``task_v2_group``); nothing is stored until ``GroupResult.save()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import TYPES, Signature, maybe_signature
from celeriac.result import GroupResult
from celeriac.utils.current import add_to_parent

if TYPE_CHECKING:
    from celeriac.app.base import Celery


class group(Signature):
    """``group(add.s(i, i) for i in range(10))``: every task at once."""

    kind = "group"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        items: Iterable[Any] = tasks
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            items = tasks[0]  # group([sig, sig]) or a generator
        members = [maybe_signature(t, app=app) for t in items]
        super().__init__(
            "celery.group", (), {"tasks": members}, options, subtask_type="group", app=app
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        tasks = (d.get("kwargs") or {}).get("tasks") or []
        sig = cls([maybe_signature(t, app=app) for t in tasks], app=app, **(d.get("options") or {}))
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

    def set_immutable(self, immutable: bool) -> None:
        for task in self.get("kwargs", {}).get("tasks") or ():
            task.set_immutable(immutable)

    def link(self, callback: Signature) -> Signature:
        """Celery's rule: a group's callback runs after its first task (use a chord to run
        after all of them)."""
        return self.tasks[0].link(callback.clone().set(immutable=True))

    def link_error(self, errback: Signature) -> Signature:
        for task in self.tasks:
            task.link_error(errback.clone())
        return errback

    def __or__(self, other: Any) -> Any:
        if isinstance(other, group):  # group | group: the second runs once the first is done
            return _type("chord")(self, body=other, app=self._app)
        chain_cls = _type("chain")
        if isinstance(other, chain_cls):
            return chain_cls(self, *other.tasks, app=self._app)
        if isinstance(other, Signature):  # group | task: upgrades to a chord
            return _type("chord")(self, body=other, app=self._app)
        return NotImplemented

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    # -- running ---------------------------------------------------------------------------
    def _members(self) -> list[Signature]:
        """Copies of the tasks, nested groups flattened into this one."""
        out: list[Signature] = []
        for task in self.tasks:
            sig = maybe_signature(task, app=self._app)
            assert sig is not None
            if isinstance(sig, group):
                out.extend(sig._members())
            else:
                out.append(sig.clone())
        return out

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        opts = self.options
        gid = opts.setdefault("task_id", _id or str(uuid.uuid4()))
        if group_id:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        root_id = opts.setdefault("root_id", root_id)
        parent_id = opts.setdefault("parent_id", parent_id)
        members = self._members()
        results = [
            task.freeze(
                group_id=gid, chord=chord, root_id=root_id, parent_id=parent_id, group_index=i
            )
            for i, task in enumerate(members)
        ]
        self.kwargs["tasks"] = members
        return GroupResult(gid, results, app=self.app)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        link: Any = None,
        link_error: Any = None,
        **options: Any,
    ) -> Any:
        """Publish every task; return their ``GroupResult``."""
        if link is not None:
            raise TypeError(
                "group(...).apply_async(link=...): a group has no single result to pass on; "
                "use a chord: chord(group(...), callback.s())"
            )
        if link_error is not None:
            raise TypeError(
                "group(...).apply_async(link_error=...): add the errback to each task "
                "(task.s().on_error(errback.s())) or to the group with group.link_error()"
            )
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        options = {k: v for k, v in options.items() if v is not None}
        merged = {**self.options, **options}
        trail = merged.pop("add_to_parent", True)
        group_id = merged.pop("task_id", None) or str(uuid.uuid4())
        merged["group_id"] = group_id
        root_id = merged.get("root_id")
        members = self._members()
        results = [
            task.freeze(group_id=group_id, root_id=root_id, group_index=index)
            for index, task in enumerate(members)
        ]
        with app.producer.batch():  # one pipelined publish per batch, not per task
            for task in members:
                task.apply_async(args, kwargs, add_to_parent=False, **merged)
        result = GroupResult(group_id, results, app=app)
        if trail:
            add_to_parent(result)  # one child: the group (Celery's trail)
        return result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run every task here, one after another (eager)."""
        group_id = options.pop("task_id", None) or self.options.get("task_id") or str(uuid.uuid4())
        members = self._members()
        return GroupResult(
            group_id, [task.apply(args, kwargs, **options) for task in members], app=self.app
        )

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"


def _type(kind: str) -> Any:
    return TYPES[kind]


__all__ = ["group"]
