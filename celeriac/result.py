"""Result objects: thin, typed views over a ResultBackend (Celery's ``celery.result``)."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from celeriac import states
from celeriac.exceptions import IncompleteStream, TaskRevokedError, TimeoutError
from celeriac.utils.current import get_current_app

if TYPE_CHECKING:
    from celeriac.app.config import Settings
    from celeriac.backends.base import ResultBackend

R = TypeVar("R")

E_WOULDBLOCK = (
    "Never call result.get() within a task! "
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)
E_NO_CONTROL = (
    "revoke() needs an app with remote control (app.control), and this result's app has none: "
    "make the result with AsyncResult(task_id, app=<your Celery app>)"
)


class AppLike(Protocol):
    """What results need from an app (``celeriac.app.Celery`` satisfies it)."""

    @property
    def backend(self) -> ResultBackend: ...

    @property
    def conf(self) -> Settings: ...


class Revokes(Protocol):
    """The part of ``app.control`` that revoking results uses."""

    def revoke(self, task_id: str | list[str], **kwargs: Any) -> Any: ...


@runtime_checkable
class ControlledApp(Protocol):
    """An app that can reach workers (``celeriac.app.Celery``; a bare ``AppLike`` may not)."""

    @property
    def control(self) -> Revokes: ...


def _revoke(app: AppLike, ids: str | list[str], **options: Any) -> None:
    """Ask the workers to discard ``ids`` through ``app``'s remote control."""
    if not isinstance(app, ControlledApp):
        raise NotImplementedError(E_NO_CONTROL)
    app.control.revoke(ids, **options)


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

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(parent, result)`` for this result and, breadth first, every child it sent
        (stored ``children``); a result not ready raises ``IncompleteStream`` unless
        ``intermediate`` (then its children are not followed)."""
        stack: deque[tuple[Any, Any]] = deque([(None, self)])
        while stack:
            parent, node = stack.popleft()
            yield parent, node
            if node.ready():
                stack.extend((node, child) for child in node.children or ())
            elif not intermediate:
                raise IncompleteStream()

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and every task it sent, and they sent (the
        graph of ``children``), as Celery's ``collect()``; ``kwargs`` go to ``get()``."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**kwargs)

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
        _revoke(
            self.app,
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


class ResultSet:
    """A list of results that can be waited on and inspected as a whole."""

    parent: Any = None

    def __init__(
        self,
        results: list[AsyncResult[Any]] | None = None,
        app: AppLike | None = None,
        backend: ResultBackend | None = None,
    ) -> None:
        self.results: list[AsyncResult[Any]] = list(results or [])
        self._app = app
        self._backend = backend

    @property
    def app(self) -> AppLike:
        if self._app is None:
            if self.results:
                return self.results[0].app
            self._app = _default_app()
        return self._app

    @app.setter
    def app(self, app: AppLike) -> None:
        self._app = app

    @property
    def backend(self) -> ResultBackend:
        if self._backend is not None:
            return self._backend
        if self.results:
            return self.results[0].backend
        return self.app.backend

    @property
    def supports_native_join(self) -> bool:
        return bool(self.results) and self.results[0].supports_native_join

    # -- membership ----------------------------------------------------------------------
    def add(self, result: AsyncResult[Any]) -> None:
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: AsyncResult[Any] | str) -> None:
        """Remove a member (a result or its id). Raises KeyError if it is not one."""
        for index, member in enumerate(self.results):
            if member == result:
                del self.results[index]
                return
        raise KeyError(result)

    def discard(self, result: AsyncResult[Any] | str) -> None:
        with contextlib.suppress(KeyError):
            self.remove(result)

    def update(self, results: list[AsyncResult[Any]]) -> None:
        self.results.extend(r for r in results if r not in self.results)

    def clear(self) -> None:
        self.results[:] = []

    # -- state ---------------------------------------------------------------------------
    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def waiting(self) -> bool:
        return any(not r.ready() for r in self.results)

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def completed_count(self) -> int:
        """How many members succeeded (Celery's meaning of "completed")."""
        return sum(1 for r in self.results if r.successful())

    def maybe_throw(
        self, callback: Callable[[str, Any], None] | None = None, propagate: bool = True
    ) -> None:
        for r in self.results:
            r.maybe_throw(callback=callback, propagate=propagate)

    maybe_reraise = maybe_throw

    def forget(self) -> None:
        for r in self.results:
            r.forget()

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        _revoke(
            self.app,
            [r.id for r in self.results],
            connection=connection,
            timeout=timeout,
            terminate=terminate,
            signal=signal,
            reply=wait,
        )

    # -- waiting -------------------------------------------------------------------------
    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], None] | None = None,
    ) -> list[Any]:
        """The members' values in order; ``timeout`` bounds the whole join.

        With ``callback`` each ``(task_id, value)`` goes to it and the list is empty.
        """
        start = time.monotonic()
        values: list[Any] = []
        for result in self.results:
            remaining = None
            if timeout is not None:
                remaining = max(timeout - (time.monotonic() - start), 0.0)
            value = result.get(
                timeout=remaining,
                propagate=propagate,
                interval=interval,
                no_ack=no_ack,
                on_interval=on_interval,
                disable_sync_subtasks=disable_sync_subtasks,
            )
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def join_native(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_interval: Callable[[], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """:meth:`join`, reading every pending member together each round (Redis: one
        round trip) and taking them in the order they finish; the values still come back
        in the members' order. ``timeout`` bounds the whole join."""
        if disable_sync_subtasks:
            assert_will_not_block()
        one_by_one = [
            r for r in self.results if not isinstance(r, AsyncResult) or isinstance(r, EagerResult)
        ]
        if one_by_one or not self.results:  # a group in the set, or eager: as join()
            return self.join(
                timeout, propagate, interval, callback, no_ack, on_message,
                disable_sync_subtasks, on_interval,
            )  # fmt: skip
        ids = [r.id for r in self.results]
        values: dict[str, Any] = {}
        ready = self.backend.iter_ready(
            ids, timeout=timeout, interval=interval, on_interval=on_interval
        )
        for task_id, meta in ready:
            value = meta["result"]
            if propagate and meta["status"] in states.PROPAGATE_STATES:
                _raise_stored(value)
            if callback is not None:
                callback(task_id, value)
            else:
                values[task_id] = value
        return [] if callback is not None else [values[task_id] for task_id in ids]

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], None] | None = None,
    ) -> list[Any]:
        """:meth:`join_native` when the store supports it (Redis), else :meth:`join`."""
        join = self.join_native if self.supports_native_join else self.join
        return join(
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            no_ack=no_ack,
            on_message=on_message,
            on_interval=on_interval,
            disable_sync_subtasks=disable_sync_subtasks,
        )

    # -- container -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult[Any]:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


class GroupResult(ResultSet):
    """The results of a ``group``, with the group's id; can be saved and restored."""

    def __init__(
        self,
        id: str | None = None,
        results: list[AsyncResult[Any]] | None = None,
        parent: Any = None,
        app: AppLike | None = None,
        backend: ResultBackend | None = None,
    ) -> None:
        super().__init__(results, app=app, backend=backend)
        self.id = id
        self.parent = parent

    def save(self, backend: ResultBackend | None = None) -> Any:
        """Store the group so ``GroupResult.restore(id)`` works from any process."""
        return (backend or self.backend).save_group(self._require_id(), self)

    def delete(self, backend: ResultBackend | None = None) -> None:
        (backend or self.backend).delete_group(self._require_id())

    @classmethod
    def restore(
        cls, id: str, backend: ResultBackend | None = None, app: AppLike | None = None
    ) -> GroupResult | None:
        if backend is None:
            backend = (app or _default_app()).backend
        return backend.restore_group(id)

    def _require_id(self) -> str:
        if not self.id:
            raise ValueError("This GroupResult has no id; only a group's result can be saved.")
        return self.id

    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent.as_tuple() if self.parent is not None else None
        return (self.id, parent), [r.as_tuple() for r in self.results]

    @property
    def children(self) -> list[AsyncResult[Any]]:
        return self.results

    def __bool__(self) -> bool:
        return bool(self.id or self.results)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return (
                other.id == self.id
                and other.results == self.results
                and other.parent == self.parent
            )
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self.id)

    def __str__(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, self.results, self.parent)


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
