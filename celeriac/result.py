"""Result objects: thin, typed views over a ResultBackend (Celery's ``celery.result``)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from celeriac import states
from celeriac.exceptions import TaskRevokedError, TimeoutError
from celeriac.result_set import GroupResult, ResultSet

if TYPE_CHECKING:
    from celeriac.backends.base import ResultBackend
    from celeriac.config import Settings

R = TypeVar("R")

E_WOULDBLOCK = (
    "Never call result.get() within a task! "
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)
E_NO_CONTROL = "revoke arrives with remote control"


class AppLike(Protocol):
    """What results need from an app (``celeriac.app.Celery`` satisfies it)."""

    @property
    def backend(self) -> ResultBackend: ...

    @property
    def conf(self) -> Settings: ...


_join_will_block: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "celeriac_task_join_will_block", default=False
)


def task_join_will_block() -> bool:
    """True while a task body runs in a worker: waiting on a result there may deadlock."""
    return _join_will_block.get()


def set_task_join_will_block(blocks: bool) -> None:
    """Set by the worker around task execution."""
    _join_will_block.set(blocks)


def assert_will_not_block() -> None:
    if task_join_will_block():
        raise RuntimeError(E_WOULDBLOCK)


@contextmanager
def allow_join_result() -> Iterator[None]:
    """Let code inside a task wait on results (at the caller's own risk of deadlock)."""
    token = _join_will_block.set(False)
    try:
        yield
    finally:
        _join_will_block.reset(token)


@contextmanager
def denied_join_result() -> Iterator[None]:
    token = _join_will_block.set(True)
    try:
        yield
    finally:
        _join_will_block.reset(token)


def _default_app() -> AppLike:
    from celeriac._state import get_current_app

    return get_current_app()


def _raise_stored(value: Any) -> None:
    """Re-raise a task's stored exception as its own type."""
    if isinstance(value, BaseException):
        raise value
    raise Exception(value)


class AsyncResult(Generic[R]):
    """The pending or finished result of one task, identified by its id."""

    TimeoutError = TimeoutError

    def __init__(
        self,
        id: str,
        backend: ResultBackend | None = None,
        task_name: str | None = None,
        app: AppLike | None = None,
        parent: AsyncResult[Any] | None = None,
    ) -> None:
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.id: str = str(id)
        self._app = app
        self._backend = backend
        self.parent = parent
        self.ignored = False
        self._cache: dict[str, Any] | None = None

    # -- wiring --------------------------------------------------------------------------
    @property
    def app(self) -> AppLike:
        if self._app is None:
            self._app = _default_app()
        return self._app

    @app.setter
    def app(self, app: AppLike) -> None:
        self._app = app

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            self._backend = self.app.backend
        return self._backend

    @backend.setter
    def backend(self, backend: ResultBackend) -> None:
        self._backend = backend

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def supports_native_join(self) -> bool:
        return self.backend.supports_native_join

    # -- meta ----------------------------------------------------------------------------
    def _get_task_meta(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        meta = self.backend.get_task_meta(self.id)
        if meta["status"] in states.READY_STATES:
            self._cache = meta
        return meta

    def _meta_field(self, key: str) -> Any:
        return self._get_task_meta().get(key)

    @property
    def state(self) -> str:
        return str(self._get_task_meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the exception instance when the task failed."""
        return self._get_task_meta()["result"]

    info = result

    @property
    def traceback(self) -> str | None:
        return cast("str | None", self._meta_field("traceback"))

    @property
    def date_done(self) -> datetime | None:
        return cast("datetime | None", self._meta_field("date_done"))

    @property
    def children(self) -> list[Any] | None:
        children = self._meta_field("children")
        if children is None:
            return None
        return [result_from_tuple(c, self._app, backend=self._backend) for c in children]

    @property
    def name(self) -> str | None:
        return cast("str | None", self._meta_field("name"))

    @property
    def args(self) -> Any:
        return self._meta_field("args")

    @property
    def kwargs(self) -> Any:
        return self._meta_field("kwargs")

    @property
    def worker(self) -> str | None:
        return cast("str | None", self._meta_field("worker"))

    @property
    def retries(self) -> int | None:
        return cast("int | None", self._meta_field("retries"))

    @property
    def queue(self) -> str | None:
        return cast("str | None", self._meta_field("queue"))

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """True when the backend holds anything for this id (PENDING is ambiguous)."""
        return self.backend.task_result_exists(self.id)

    # -- waiting -------------------------------------------------------------------------
    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_interval: Callable[[], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """Wait for the task and return its value, re-raising its exception if it failed.

        Raises:
            celeriac.exceptions.TimeoutError: not ready within ``timeout`` seconds.
            Exception: the task's own exception, as its original type (``propagate``).
        """
        if self.ignored:
            return cast(R, None)
        if disable_sync_subtasks:
            assert_will_not_block()
        check = on_interval
        if follow_parents and propagate and self.parent is not None:
            self._maybe_reraise_parent_error()
            check = self._chain_checks(on_interval)
        if self._cache is None:
            meta = self.backend.wait_for(
                self.id, timeout=timeout, interval=interval, on_interval=check
            )
            self._cache = meta
            if on_message is not None:
                on_message(meta)
        return cast(R, self.maybe_throw(propagate=propagate, callback=callback))

    wait = get

    def _chain_checks(self, extra: Callable[[], None] | None) -> Callable[[], None]:
        def check() -> None:
            self._maybe_reraise_parent_error()
            if extra is not None:
                extra()

        return check

    def _parents(self) -> Iterator[AsyncResult[Any]]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def _maybe_reraise_parent_error(self) -> None:
        for node in reversed(list(self._parents())):
            node.maybe_throw()

    def maybe_throw(
        self, propagate: bool = True, callback: Callable[[str, Any], None] | None = None
    ) -> Any:
        """Raise the stored exception if the task failed or was revoked, else return value."""
        meta = self._get_task_meta()
        value = meta["result"]
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            _raise_stored(value)
        if callback is not None:
            callback(self.id, value)
        return value

    maybe_reraise = maybe_throw

    # -- actions -------------------------------------------------------------------------
    def forget(self) -> None:
        """Delete the stored result (and the parents')."""
        self._cache = None
        if self.parent is not None:
            self.parent.forget()
        self.backend.forget(self.id)

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Ask the workers to discard (or, with ``terminate``, kill) this task."""
        control = getattr(self.app, "control", None)
        if control is None:
            raise NotImplementedError(E_NO_CONTROL)
        control.revoke(
            self.id,
            connection=connection,
            terminate=terminate,
            signal=signal,
            reply=wait,
            timeout=timeout,
        )

    # -- identity ------------------------------------------------------------------------
    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent
        return (self.id, parent.as_tuple() if parent is not None else None), None

    def as_list(self) -> list[str]:
        return [self.id, *(p.id for p in self._parents())]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return bool(other.id == self.id)
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __copy__(self) -> AsyncResult[R]:
        return type(self)(self.id, self._backend, None, self._app, self.parent)

    def __reduce__(self) -> tuple[Any, ...]:
        # The backend holds connections; the unpickled result uses its app's backend.
        return type(self), (self.id, None, None, None, self.parent)


class EagerResult(AsyncResult[R]):
    """A result computed in this process (``task_always_eager``, ``Task.apply``)."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(id)
        self._result = ret_value
        self._state = state
        self._traceback = traceback
        self._name = name

    def _get_task_meta(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "result": self._result,
            "status": self._state,
            "traceback": self._traceback,
            "name": self._name,
            "children": [],
            "date_done": None,
        }

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_interval: Callable[[], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        if disable_sync_subtasks:
            assert_will_not_block()
        return cast(R, self.maybe_throw(propagate=propagate, callback=callback))

    wait = get

    def ready(self) -> bool:
        return True

    def forget(self) -> None:
        return None

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        """Mark as REVOKED: ``get()`` then raises TaskRevokedError (Celery 5.7 behaviour)."""
        self._state = states.REVOKED
        self._result = TaskRevokedError("revoked")
        self._traceback = None

    def exists(self) -> bool:
        return True

    @property
    def supports_native_join(self) -> bool:
        return False

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, self._result, self._state, self._traceback, self._name)

    def __copy__(self) -> EagerResult[R]:
        return type(self)(self.id, self._result, self._state, self._traceback, self._name)


def result_from_tuple(
    r: Any, app: AppLike | None = None, *, backend: ResultBackend | None = None
) -> Any:
    """Rebuild an AsyncResult / GroupResult from its ``as_tuple()`` form (lists accepted).

    ``((id, parent_tuple), None)`` is a task result; ``((id, parent), [children])`` a group.
    """
    if isinstance(r, (AsyncResult, ResultSet)):
        return r
    res, nodes = r
    task_id, parent = res if isinstance(res, (list, tuple)) else (res, None)
    parent_result = result_from_tuple(parent, app, backend=backend) if parent else None
    if nodes is not None:
        members = [result_from_tuple(child, app, backend=backend) for child in nodes]
        return GroupResult(task_id, members, parent=parent_result, app=app, backend=backend)
    return AsyncResult(task_id, backend=backend, app=app, parent=parent_result)


__all__ = [
    "AppLike",
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "allow_join_result",
    "assert_will_not_block",
    "denied_join_result",
    "result_from_tuple",
    "set_task_join_will_block",
    "task_join_will_block",
]
