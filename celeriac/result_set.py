"""ResultSet and GroupResult: collections of AsyncResults (re-exported by celeriac.result).

They live apart from ``celeriac.result`` only to keep modules small; this module imports
nothing from it at run time, so either can be imported first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.backends.base import ResultBackend
    from celeriac.result import AppLike, AsyncResult


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
            from celeriac.result import _default_app

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
        control = getattr(self.app, "control", None)
        if control is None:
            from celeriac.result import E_NO_CONTROL

            raise NotImplementedError(E_NO_CONTROL)
        control.revoke(
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

    get = join
    join_native = join

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
            from celeriac.result import _default_app

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


__all__ = ["GroupResult", "ResultSet"]
