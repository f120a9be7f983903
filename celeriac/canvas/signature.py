"""``Signature``: one task call as a value (Celery's dict layout, so it survives any serializer).

A signature is a ``dict`` with Celery's six keys (``task``, ``args``, ``kwargs``, ``options``,
``subtask_type``, ``immutable``): it travels inside messages (``link=``, a chain's remaining
steps, a chord's body) and comes back as the right class through :func:`maybe_signature`.
Sending reaches the app through the signature's own ``app`` (or the current app); nothing
here imports the app layer.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac.exceptions import NotRegistered
from celeriac.result import AsyncResult
from celeriac.utils import current

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

#: ``subtask_type`` -> class, filled by the subclasses (``chain``, ``group``, ``chord``).
TYPES: dict[str, type[Signature]] = {}

#: Options a clone never overrides once set (Celery's ``_IMMUTABLE_OPTIONS``).
_IMMUTABLE_OPTIONS = frozenset({"group_id", "stamped_headers"})


def current_app() -> Celery:
    """The app a signature without one uses."""
    return current.get_current_app()


class Signature(dict[str, Any]):
    """One task invocation: name, partial arguments and ``apply_async`` options.

    ``add.s(2)`` makes one; ``sig.delay(3)`` sends ``add(3, 2)`` (partial arguments are
    prepended, unless the signature is immutable: ``add.si(2, 2)``).
    """

    #: The ``subtask_type`` of the class (None: a plain task).
    kind: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind is not None:
            TYPES[cls.kind] = cls

    def __init__(
        self,
        task: str | Task[Any, Any] | Mapping[str, Any] | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        type: Task[Any, Any] | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Celery | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        self._type = type
        if isinstance(task, Mapping):
            super().__init__(task)
            return
        name = task
        if task is not None and not isinstance(task, str):
            name, self._type = task.name, task
        if not _is_sequence(args):
            raise TypeError(
                f"signature({name!r}): args must be a list or tuple, not "
                f"{type_name(args)}; write add.s(2, 2) or signature('add', args=(2, 2))"
            )
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(
                f"signature({name!r}): kwargs must be a mapping, not {type_name(kwargs)}; "
                f"write signature('add', kwargs={{'x': 1}})"
            )
        super().__init__(
            task=name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}, **ex),
            subtask_type=subtask_type,
            immutable=immutable,
        )

    # -- the six keys as attributes --------------------------------------------------------
    @property
    def task(self) -> str:
        return str(self["task"])

    name = task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self.get("args") or ())

    @args.setter
    def args(self, value: Sequence[Any]) -> None:
        self["args"] = tuple(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        value: dict[str, Any] | None = self.get("kwargs")
        if value is None:
            value = self["kwargs"] = {}
        return value

    @kwargs.setter
    def kwargs(self, value: Mapping[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        value: dict[str, Any] | None = self.get("options")
        if value is None:
            value = self["options"] = {}
        return value

    @options.setter
    def options(self, value: Mapping[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def id(self) -> str | None:
        """The task id, once frozen (``options['task_id']``)."""
        return self.options.get("task_id")

    @property
    def app(self) -> Celery:
        return self._app if self._app is not None else self._fallback_app()

    @app.setter
    def app(self, value: Celery) -> None:
        self._app = value

    def _fallback_app(self) -> Celery:
        """The app of a signature made without one (composites: their members' app)."""
        return current_app()

    @property
    def type(self) -> Task[Any, Any]:
        """The registered task (NotRegistered when this app does not have it)."""
        if self._type is None:
            self._type = self.app.tasks[self.task]
        return self._type

    # -- building --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        """The signature (of the right class) that ``d``, a signature as a dict, describes."""
        kind = d.get("subtask_type")
        if kind:
            target = TYPES.get(str(kind))
            if target is None:
                raise ValueError(
                    f"Unknown canvas type {kind!r} in {dict(d)!r}: celeriac knows "
                    f"{', '.join(sorted(TYPES))}"
                )
            if target is not cls:
                return target.from_dict(d, app=app)
        return Signature(d, app=app)

    def _merge(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        """Partial args prepended, kwargs merged, options merged (the immutable ones kept)."""
        new_options = self.options
        if options is not None:
            locked = _IMMUTABLE_OPTIONS | set(self.options.get("stamped_headers") or ())
            new_options = {
                **self.options,
                **{k: v for k, v in options.items() if k not in locked or k not in self.options},
            }
        if self.immutable and not force:
            return self.args, self.kwargs, new_options
        return (
            tuple(args) + self.args if args else self.args,
            dict(self.kwargs, **kwargs) if kwargs else self.kwargs,
            new_options,
        )

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        """A copy with partial ``args`` prepended, ``kwargs`` and options merged."""
        if args or kwargs or opts:
            new_args, new_kwargs, new_opts = self._merge(args, kwargs, opts)
        else:
            new_args, new_kwargs, new_opts = self.args, self.kwargs, self.options
        clone = Signature.from_dict(
            {
                "task": self.get("task"),
                "args": tuple(new_args),
                "kwargs": dict(new_kwargs),
                "options": copy.deepcopy(new_opts),
                "subtask_type": self.subtask_type,
                "immutable": self.immutable,
            },
            app=self._app,
        )
        clone._type = self._type
        return clone

    partial = clone

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set ``apply_async`` options (and ``immutable``) in place; returns the signature."""
        if immutable is not None:
            self.set_immutable(immutable)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Signature | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        """Give the signature its task id now (and these headers); return its result."""
        opts = self.options
        task_id = opts.get("task_id")
        if task_id is None:
            task_id = opts["task_id"] = _id or str(uuid.uuid4())
        if root_id:
            opts["root_id"] = root_id
        if parent_id:
            opts["parent_id"] = parent_id
        if "reply_to" not in opts:
            opts["reply_to"] = self.app.thread_oid
        if group_id and "group_id" not in opts:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        return AsyncResult(task_id, app=self.app, task_name=self.task)

    def replace(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Signature:
        """A copy with ``args``, ``kwargs`` or ``options`` replaced (those not None)."""
        clone = self.clone()
        if args is not None:
            clone.args = args
        if kwargs is not None:
            clone.kwargs = kwargs
        if options is not None:
            clone.options = options
        return clone

    # -- callbacks -------------------------------------------------------------------------
    def _append_option(self, key: str, value: Any) -> None:
        items = self.options.get(key)
        if items is None:
            self.options[key] = [value]
        elif isinstance(items, list):
            if value not in items:
                items.append(value)
        else:
            self.options[key] = [items, value]

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this task's return value when it succeeds."""
        self._append_option("link", callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` when this task fails (Celery's errback arguments)."""
        self._append_option("link_error", errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """:meth:`link_error`, returning this signature (to chain calls)."""
        self.link_error(errback)
        return self

    # -- running ---------------------------------------------------------------------------
    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the task, with partial ``args`` / ``kwargs`` / options merged in."""
        options = {k: v for k, v in options.items() if v is not None}
        if args or kwargs or options:
            merged_args, merged_kwargs, merged_opts = self._merge(args, kwargs, options)
        else:
            merged_args, merged_kwargs, merged_opts = self.args, self.kwargs, self.options
        return self._sender()(merged_args, merged_kwargs, **merged_opts)

    def _sender(self) -> Callable[..., Any]:
        try:
            task = self.type
        except NotRegistered:  # not known here: send it by name for a worker that knows it
            app, name = self.app, self.task
            return lambda a, k, **o: app.send_task(name, a, k, **o)
        return task.apply_async

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task with partial ``args`` / ``kwargs`` (``apply_async`` shortcut)."""
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the task here and now (eager), as ``Task.apply``."""
        options = {k: v for k, v in options.items() if v is not None}
        merged_args, merged_kwargs, merged_opts = self._merge(args or (), kwargs or {}, options)
        return self.type.apply(merged_args, merged_kwargs, **merged_opts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function in this process (no message)."""
        merged_args, merged_kwargs, _ = self._merge(args, kwargs, None)
        return self.type(*merged_args, **merged_kwargs)

    # -- composing -------------------------------------------------------------------------
    def __or__(self, other: Any) -> Any:
        chain_cls: Any = TYPES["chain"]
        if isinstance(other, TYPES["group"]) and not isinstance(self, TYPES["group"]):
            return chain_cls(self, other, app=self._app)
        if isinstance(other, chain_cls):
            return chain_cls(self, *other.tasks, app=self._app)
        if isinstance(other, Signature):
            return chain_cls(self, other, app=self._app)
        return NotImplemented

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        clone = Signature.from_dict(copy.deepcopy(dict(self), memo), app=self._app)
        clone._type = self._type
        return clone

    def __reduce__(self) -> tuple[Any, ...]:
        return signature, (dict(self),)

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        merged_args, merged_kwargs, _ = self._merge(args, kwargs, {}, force=True)
        parts = [repr(a) for a in merged_args]
        parts += [f"{k}={v!r}" for k, v in merged_kwargs.items()]
        return f"{self.get('task')}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self.reprcall()


def type_name(value: object) -> str:
    return type(value).__name__


def _is_sequence(value: object) -> bool:
    return value is None or isinstance(value, (list, tuple))


def signature(
    varies: str | Task[Any, Any] | Mapping[str, Any] | None,
    *args: Any,
    app: Celery | None = None,
    **kwargs: Any,
) -> Signature:
    """A signature: ``signature('tasks.add', args=(2, 2))``, or the one a dict describes."""
    if isinstance(varies, Mapping):
        if isinstance(varies, Signature):
            return varies.clone()
        return Signature.from_dict(varies, app=app)
    make: Any = Signature
    made: Signature = make(varies, *args, app=app, **kwargs)
    return made


subtask = signature


def maybe_signature(
    d: Signature | Mapping[str, Any] | None, app: Celery | None = None, clone: bool = False
) -> Signature | None:
    """``d`` as a Signature (a dict from a message becomes one; None stays None)."""
    if d is None:
        return None
    if isinstance(d, Signature):
        if clone:
            d = d.clone()
    elif isinstance(d, Mapping):
        d = Signature.from_dict(d, app=app)
    else:
        raise TypeError(
            f"Expected a signature (add.s(...)) or its dict form, got {type_name(d)}: {d!r}"
        )
    if app is not None and d._app is None:
        d._app = app
    return d


def maybe_list(value: Any) -> list[Any] | None:
    """``None``, a list, or one item as a list (Celery's ``link=`` forms)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and not isinstance(value, Signature):
        return list(value)
    return [value]


def signatures(values: Iterable[Any], app: Celery | None = None) -> list[Signature]:
    """Every item of ``values`` as a Signature."""
    out: list[Signature] = []
    for value in values:
        sig = maybe_signature(value, app=app)
        if sig is not None:
            out.append(sig)
    return out


__all__ = [
    "TYPES",
    "Signature",
    "current_app",
    "maybe_list",
    "maybe_signature",
    "signature",
    "signatures",
    "subtask",
]
