"""``Task``: a registered function, typed over its parameters and return value."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar

from celeriac.app.hooks import SendHook
from celeriac.app.replace import replacement
from celeriac.canvas import Signature, chunks, xmap, xstarmap
from celeriac.canvas.chord import ensure_can_join
from celeriac.events.node import for_node
from celeriac.exceptions import Ignore, MaxRetriesExceededError, Retry
from celeriac.execution.context import Context
from celeriac.execution.execute import execute
from celeriac.execution.retries import add_autoretry
from celeriac.execution.retries import retry as send_retry
from celeriac.protocol.message import TaskCall
from celeriac.protocol.options import SendOptions
from celeriac.result import AsyncResult, EagerResult
from celeriac.utils.current import get_current_app

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.backends.base import ResultBackend

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A task: call it to run in-process, ``delay`` / ``apply_async`` to run it on a worker.

    Class attributes are the defaults; ``@app.task(**options)`` sets them per instance.
    ``None`` for ``acks_late``, ``ignore_result``, ``serializer``, ``track_started``, time
    limits and ``reject_on_worker_lost`` means "use the app's setting".
    """

    name: str = ""
    typing: bool = True
    bind: bool = False
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    ignore_result: bool | None = None
    serializer: str | None = None
    compression: str | None = None
    track_started: bool | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    reject_on_worker_lost: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180.0
    rate_limit: str | None = None
    #: "worker" (Celery's) or "cluster" (one bucket for every worker); None: the setting
    rate_limit_scope: str | None = None
    priority: int | None = None
    expires: float | None = None
    queue: str | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] | None = None
    #: True (factor 1) or a number of seconds: exponential backoff for autoretry_for.
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    #: Beyond Celery: seconds during which an identical call returns the queued one.
    unique_for: float | None = None
    MaxRetriesExceededError: ClassVar[type[MaxRetriesExceededError]] = MaxRetriesExceededError
    shared: ClassVar[bool] = False
    #: Record the tasks this task sends in ``self.request.children`` (stored with its result).
    trail: bool = True

    def __init__(
        self,
        fun: Callable[..., R] | None = None,
        *,
        app: Celery | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        self._app = app
        self._fun = fun
        # A contextvar, not a thread-local: coroutines of one event loop each see their own.
        self._stack: ContextVar[tuple[Context, ...]] = ContextVar(f"request-{id(self)}", default=())
        for key, value in options.items():
            setattr(self, key, value)
        if fun is not None:
            self.__doc__ = fun.__doc__
            self.__module__ = fun.__module__
            self.__wrapped__ = fun
        if name:
            self.name = name
        add_autoretry(self)

    # -- identity --------------------------------------------------------------------------
    @property
    def app(self) -> Celery:
        """The app this task belongs to (shared tasks: the current app)."""
        if self._app is not None:
            return self._app
        return get_current_app()

    @app.setter
    def app(self, value: Celery) -> None:
        self._app = value

    @property
    def backend(self) -> ResultBackend:
        return self.app.backend

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main or '__main__'}>"

    # -- running in-process ----------------------------------------------------------------
    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The task body: the decorated function (with ``self`` first when ``bind=True``)."""
        if self._fun is None:
            raise NotImplementedError(f"Task {self.name!r} has no run() method")
        if self.bind:
            return self._fun(self, *args, **kwargs)
        return self._fun(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self._stack.get():
            self.push_request(args=args, kwargs=kwargs, called_directly=True)
            try:
                return self.run(*args, **kwargs)
            finally:
                self.pop_request()
        return self.run(*args, **kwargs)

    # -- the request context ---------------------------------------------------------------
    @property
    def request(self) -> Context:
        """The request being executed (an empty Context when called directly)."""
        stack = self._stack.get()
        return stack[-1] if stack else Context()

    def add_trail(self, result: Any) -> Any:
        """Record ``result`` (of a task or group this task sent) as one of its children."""
        if self.trail:
            self.request.children.append(result)
        return result

    def push_request(self, context: Context | None = None, **fields: Any) -> None:
        context = context if context is not None else Context(**fields)
        self._stack.set((*self._stack.get(), context))

    def pop_request(self) -> None:
        self._stack.set(self._stack.get()[:-1])

    # -- retrying ----------------------------------------------------------------------------
    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Re-send this task (same id, ``retries + 1``) and raise :class:`Retry`.

        ``countdown`` defaults to ``default_retry_delay``. Past ``max_retries`` (``None``:
        retry forever) ``exc`` is raised, or :class:`MaxRetriesExceededError` without one.
        ``queue=`` and other ``apply_async`` options apply to the new message. With
        ``throw=False`` the Retry is returned instead of raised.
        """
        return send_retry(self, args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    # -- sending -----------------------------------------------------------------------------
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments (``apply_async`` without options)."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task to a worker; see the README for every option."""
        app = self.app
        # Send hooks (unique tasks, ...) take their own options out before the standard ones.
        send_hooks = app.hook_list.composed("send", _send_hooks)
        taken = (
            [{k: options.pop(k) for k in h.options if k in options} for h in send_hooks]
            if send_hooks
            else []
        )
        opts = SendOptions.from_kwargs(self._default_options(options))
        if app.conf["task_always_eager"]:
            return self.apply(args, kwargs, task_id=opts.task_id)
        for hook, hook_options in zip(send_hooks, taken, strict=True):
            if not hook.applies(self, hook_options):
                continue
            opts = replace(opts, task_id=opts.task_id or str(uuid.uuid4()))
            assert opts.task_id is not None
            owner = hook.before_send(self, args, kwargs, opts.task_id, hook_options)
            if owner is not None:
                return self.AsyncResult(owner)
        return app.send_task(self.name, args, kwargs, _options=opts, _task=self)

    def _default_options(self, options: dict[str, Any]) -> dict[str, Any]:
        for attr in (
            "serializer",
            "compression",
            "priority",
            "expires",
            "queue",
            "time_limit",
            "soft_time_limit",
        ):
            value = getattr(self, attr)
            if value is not None and options.get(attr) is None:
                options[attr] = value
        if options.get("ignore_result") is None and self.ignore_result is not None:
            options["ignore_result"] = self.ignore_result
        return options

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        throw: bool | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task here and now through the worker's execution path (eager mode)."""
        app = self.app
        tid = task_id or str(uuid.uuid4())
        call = TaskCall(
            name=self.name,
            id=tid,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            retries=int(options.get("retries", 0) or 0),
            root_id=options.get("root_id") or tid,
            parent_id=options.get("parent_id"),
            callbacks=_signature_list(options.get("link")),
            errbacks=_signature_list(options.get("link_error")),
        )
        outcome = execute(
            app,
            self,
            call,
            hostname=app.hostname,
            delivery_info={"is_eager": True},
            is_eager=True,
            store_result=bool(app.conf.task_store_eager_result),
        )
        retried = outcome.exception
        if isinstance(retried, Retry) and retried.is_eager and retried.sig is not None:
            # Celery runs an eager retry at once (no countdown), with retries + 1.
            sig = retried.sig
            return self.apply(
                sig.args, sig.kwargs, task_id=tid, throw=throw, retries=call.retries + 1
            )
        propagate = app.conf.task_eager_propagates if throw is None else throw
        if propagate and outcome.exception is not None:
            raise outcome.exception
        return EagerResult(
            tid, outcome.retval, outcome.state, traceback=outcome.traceback, name=self.name
        )

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Store ``state`` (any name, e.g. ``"PROGRESS"``) and ``meta`` for this task now, as
        Celery does: clients see them as ``AsyncResult.state`` and ``.info``."""
        task_id = task_id or self.request.id
        if task_id is None:
            raise ValueError(
                f"{self.name}.update_state(): no task is running here to update; "
                "pass task_id= to update another task's state"
            )
        if state is None:
            raise ValueError(f"{self.name}.update_state(): give the state, e.g. state='PROGRESS'")
        self.backend.store_result(task_id, meta, state, request=self.request, **kwargs)

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:
        return AsyncResult(task_id, app=self.app, task_name=self.name)

    # -- the canvas ------------------------------------------------------------------------
    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A signature of this task: ``add.signature((2, 2), countdown=10)``."""
        immutable = bool(options.pop("immutable", False))
        return Signature(self, args, kwargs, options, immutable=immutable, app=self._app)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """``add.s(2)``: a signature with partial arguments (the parent's result is prepended
        when it runs in a chain or as a callback)."""
        return Signature(self, args, kwargs, app=self._app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """``add.si(2, 2)``: an immutable signature (the parent's result is not passed)."""
        return Signature(self, args, kwargs, immutable=True, app=self._app)

    def map(self, it: Iterable[Any]) -> xmap:
        """``add.map([1, 2])``: one message; the worker returns ``[add(1), add(2)]``."""
        return xmap(self.s(), it, app=self._app)

    def starmap(self, it: Iterable[Any]) -> xstarmap:
        """``add.starmap([(1, 2), (3, 4)])``: one message; the worker returns
        ``[add(1, 2), add(3, 4)]``."""
        return xstarmap(self.s(), it, app=self._app)

    def chunks(self, it: Iterable[Any], n: int) -> chunks:
        """``add.chunks(zip(a, b), 10)``: a group of ``starmap`` messages of 10 items each."""
        return chunks(self.s(), it, n, app=self._app)

    def replace(self, sig: Signature) -> Any:
        """Replace this task with ``sig``, which inherits its id, callbacks, errbacks, chord
        and the rest of its chain (Celery's rules, ``app/replace.py``); the task ends here.

        In a worker this raises :class:`~celeriac.exceptions.Ignore` (write
        ``return self.replace(...)``); run eagerly it returns the replacement's value.
        """
        return self.on_replace(replacement(self, sig))

    def on_replace(self, sig: Signature) -> Any:
        """Send (or, eagerly, run) the replacement; override and call ``super()`` to act
        on a replacement."""
        if self.request.is_eager:
            return sig.apply().get()
        sig.delay()
        raise Ignore("Replaced by new task")

    def add_to_chord(self, sig: Signature, lazy: bool = False) -> Any:
        """Add ``sig`` to the header of the chord this task belongs to (Celery's): the body
        waits for it too and gets its value. Sent at once (its result returned), or with
        ``lazy`` returned unsent: then ``sig.delay()`` is up to the caller."""
        request = self.request
        if not request.chord or not request.group:
            raise ValueError("Current task is not member of any chord")
        joiner = ensure_can_join(self.app.backend)
        inherited = {
            "group_id": request.group,
            "group_index": request.group_index,
            "chord": request.chord,
            "root_id": request.root_id,
        }
        sig.set(**{k: v for k, v in inherited.items() if v is not None})
        sig.freeze()
        joiner.add_to_chord(request.group)
        return sig if lazy else sig.delay()

    def takes_request_errback(self) -> bool:
        """Celery's errback rule: a task made from a function (not ``bind=True``) with more
        than one positional parameter is called in the failing worker as
        ``errback(request, exc, traceback)``; any other errback is sent ``(task_id,)``."""
        fun = self._fun
        if fun is None or self.bind:
            return False
        try:
            params = inspect.signature(fun).parameters.values()
        except (TypeError, ValueError):
            return False
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return len(positional) > 1 or any(p.kind is p.VAR_POSITIONAL for p in params)

    def send_event(self, type_: str, retry: bool = True, **fields: Any) -> None:
        """Send a custom event about the running task (``uuid`` added), from its worker,
        when the worker sends task events (Celery's ``Task.send_event``)."""
        request = self.request
        node = for_node(request.hostname or "")
        if node is not None:
            node.task(type_, uuid=request.id, **fields)

    # -- hooks (override in a base class) --------------------------------------------------
    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Run before the task body in the worker."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Run after the task body returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run after the task body raised."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run when the task is retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run after the task finished, whatever the outcome."""

    # -- resolved options (task attribute, else the app's setting) ---------------------------
    def resolve(self, attr: str, setting: str) -> Any:
        value = getattr(self, attr)
        return self.app.conf[setting] if value is None else value


def _signature_list(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    return [dict(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _send_hooks(hooks: tuple[Any, ...]) -> tuple[SendHook, ...]:
    return tuple(h for h in hooks if isinstance(h, SendHook))


__all__ = ["Context", "Task"]
