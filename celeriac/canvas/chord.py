"""``chord``: a group (the header) whose results, once all are in, go to one task (the body).

The client stores the chord's size, then publishes the header tasks with ``group=<id>``,
``group_index=i`` and the body in ``embed.chord`` (vector ``task_v2_chord``). The result store
counts the finished header tasks (:class:`~celeriac.backends.capabilities.JoinsChords`); the
worker that finishes the last one publishes the body (:mod:`celeriac.execution.callbacks`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.backends.capabilities import JoinsChords
from celeriac.canvas.group import group
from celeriac.canvas.signature import Signature, maybe_list, maybe_signature, signatures
from celeriac.exceptions import ImproperlyConfigured
from celeriac.result import GroupResult, allow_join_result

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.backends.base import ResultBackend

#: The stores that can count a chord's header, named in the error for the others.
JOINING_STORES = (
    "Redis (redis://), the embedded SQLite store (db+sqlite://), a SQL database "
    "(db+postgresql://, db+mysql://) or cache+memory://"
)


def ensure_can_join(backend: ResultBackend) -> JoinsChords:
    """``backend`` if it can join chords, else a one-line error naming those that can."""
    if isinstance(backend, JoinsChords):
        return backend
    raise ImproperlyConfigured(
        f"A chord needs a result store that can count its header tasks, and "
        f"{type(backend).__name__} ({backend.as_uri()}) cannot: set result_backend to "
        f"{JOINING_STORES}."
    )


class chord(Signature):
    """``chord(header)(body)`` or ``chord(header, body)``; ``group(...) | body`` too."""

    kind = "chord"

    def __init__(
        self,
        header: Any = None,
        body: Any = None,
        task: str = "celery.chord",
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, group):
            tasks = header.tasks
        elif header is None:
            tasks = []
        elif isinstance(header, Signature) and not isinstance(header, group):
            tasks = [header]
        else:
            tasks = signatures(header, app=app)
        super().__init__(
            task,
            args or (),
            {
                "kwargs": dict(kwargs or {}),
                "header": group(tasks, app=app),
                "body": maybe_signature(body, app=app),
            },
            options,
            subtask_type="chord",
            app=app,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kw = dict(d.get("kwargs") or {})
        header = maybe_signature(kw.get("header"), app=app)
        tasks = header.tasks if isinstance(header, group) else kw.get("header") or []
        sig = cls(
            tasks,
            kw.get("body"),
            args=d.get("args"),
            kwargs=kw.get("kwargs"),
            app=app,
            **(d.get("options") or {}),
        )
        sig.set_immutable(bool(d.get("immutable")))
        return sig

    @property
    def tasks(self) -> list[Signature]:
        header = self.kwargs["header"]
        return header.tasks if isinstance(header, group) else list(header)

    @property
    def body(self) -> Signature | None:
        return self.kwargs.get("body")

    @body.setter
    def body(self, value: Signature) -> None:
        self.kwargs["body"] = value

    def _fallback_app(self) -> Celery:
        for sig in (self.body, *self.tasks):
            if sig is not None and sig._app is not None:
                return sig._app
        return super()._fallback_app()

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        sig = super().clone(args, kwargs, **opts)
        sig.kwargs["header"] = group([t.clone() for t in self.tasks], app=self._app)
        if self.body is not None:
            sig.kwargs["body"] = self.body.clone()
        return sig

    def link(self, callback: Signature) -> Signature:
        """A chord's callback runs after its body."""
        self._require_body().link(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """The errback of the body: called when a header task or the body fails."""
        self._require_body().link_error(errback)
        return errback

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

    def __call__(self, body: Signature | None = None, **options: Any) -> Any:
        """``chord(header)(body)``: send the chord with this body."""
        return self.apply_async((), {"body": body} if body is not None else {}, **options)

    def _require_body(self) -> Signature:
        body = self.body
        if body is None:
            raise ValueError(
                "This chord has no body (the task that gets the header's results): write "
                "chord(header, body.s()) or chord(header)(body.s())"
            )
        return body

    def __len__(self) -> int:
        return len(self.tasks)

    # -- running ---------------------------------------------------------------------------
    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> Any:
        """Publish the header; return the body's result (its ``.parent`` is the header's)."""
        kwargs = dict(kwargs or {})
        body = kwargs.pop("body", None) or self._require_body()
        args = tuple(args or ()) + self.args if args and not self.immutable else self.args
        options = {k: v for k, v in options.items() if v is not None}
        body = body.clone()
        for callback in maybe_list(options.pop("link", None)) or []:
            body.link(callback)
        for errback in maybe_list(options.pop("link_error", None)) or []:
            body.link_error(errback)
        app = self.app
        if app.conf.task_always_eager:
            with allow_join_result():
                return self.apply(args, kwargs, body=body)
        merged = {**self.options, **options}
        task_id = task_id or merged.pop("task_id", None)
        return self.run(body, args, dict(self.kwargs["kwargs"], **kwargs), task_id, merged)

    def run(
        self,
        body: Signature,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        task_id: str | None,
        options: dict[str, Any],
    ) -> Any:
        app = self.app
        backend = ensure_can_join(app.backend)
        header_delay = {k: options.pop(k) for k in ("countdown", "eta") if k in options}
        group_id = self.kwargs["header"].options.get("task_id") or str(uuid.uuid4())
        root_id = body.options.get("root_id")
        options.pop("chain", None)
        options.pop("chord", None)
        body.options.update({k: v for k, v in options.items() if k != "parent_id"})
        body_result = body.freeze(task_id or str(uuid.uuid4()), group_id=group_id, root_id=root_id)
        header = group(self.tasks, app=app)
        members = header._members()
        results = [
            task.freeze(group_id=group_id, chord=body, root_id=root_id, group_index=i)
            for i, task in enumerate(members)
        ]
        if not members:  # an empty header: the body runs at once with no results
            body.apply_async(([],))
            return body_result
        backend.set_chord_size(group_id, len(members))
        with app.producer.batch():  # the header in pipelined batches
            for task in members:
                task.apply_async(args, kwargs, **options, **header_delay)
        body_result.parent = GroupResult(group_id, results, app=app)
        return body_result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        body: Signature | None = None,
        **options: Any,
    ) -> Any:
        """Run the header, then the body, here (eager)."""
        body = body if body is not None else self._require_body()
        header = group(self.tasks, app=self.app).apply(args, kwargs)
        return body.apply((header.get(),), **options)

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(t) for t in self.tasks)}], {self.body!r})"


__all__ = ["JOINING_STORES", "chord", "ensure_can_join"]
