"""The app's own hooks: what users and extras add to the task pipeline (``app.add_hook``).

dramatiq's ``broker.add_middleware(m, before=, after=)``, per app. The execution layer runs
these hooks inside its standard pipeline (signals, the task's handlers, result storage, log
lines) for every run of the app's tasks, eager or in any pool; an anchor (``before=`` /
``after=``) names the class of a hook already in this list. This module only orders objects:
what a hook does (``before`` / ``after`` around one run) is
:class:`celeriac.execution.hooks.Hook`, and a hook that also acts when a task is sent
implements :class:`SendHook`.

The list is fixed once a worker starts (:meth:`HookList.freeze`): every pool, and every
prefork child forked from the worker, runs the same pipeline. Adding a hook afterwards raises
:class:`RuntimeError`; configure hooks where the app is created, before the worker starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task

T = TypeVar("T")

#: Callables that give each new app its hooks (extras register theirs when imported).
_PROVIDERS: list[Callable[[Celery], Iterable[Any]]] = []


def register_provider(provider: Callable[[Celery], Iterable[Any]]) -> None:
    """Give every app created from now on the hooks ``provider(app)`` returns (first)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def provided_hooks(app: Celery) -> list[Any]:
    """The hooks the registered providers give ``app``, in registration order."""
    return [hook for provider in _PROVIDERS for hook in provider(app)]


@runtime_checkable
class SendHook(Protocol):
    """A capability: a hook that acts when a task is sent (``apply_async``), not run.

    ``options`` names the ``apply_async`` keyword arguments the hook takes for itself (they
    are removed before the standard options are read). ``applies`` says whether this call
    concerns the hook at all; then ``before_send`` returns the id of the call the caller
    should get instead of sending this one (nothing is then sent), or None to send it.
    Eager calls (``task_always_eager``) run without send hooks, as they are not sent.
    """

    options: ClassVar[frozenset[str]]

    def applies(self, task: Task[Any, Any], options: Mapping[str, Any]) -> bool: ...

    def before_send(
        self,
        task: Task[Any, Any],
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        task_id: str,
        options: Mapping[str, Any],
    ) -> str | None: ...


class HookList:
    """The app's hooks in pipeline order; :meth:`add` places one, :meth:`freeze` fixes them."""

    def __init__(self, hooks: Iterable[Any] = ()) -> None:
        self._hooks: list[Any] = list(hooks)
        self._frozen = False
        self._composed: dict[str, Any] = {}

    def __iter__(self) -> Any:
        return iter(tuple(self._hooks))

    def __len__(self) -> int:
        return len(self._hooks)

    def view(self) -> tuple[Any, ...]:
        """The hooks, read-only."""
        return tuple(self._hooks)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def add(self, hook: Any, *, before: type | None = None, after: type | None = None) -> None:
        """Place ``hook`` just before the first hook of class ``before``, just after the last
        of class ``after``, or last; an anchor not in the list is a :class:`ValueError`."""
        if self._frozen:
            raise RuntimeError(
                f"Cannot add hook {hook!r}: the app's hooks are fixed once a worker has started "
                "(every pool and child process runs the same pipeline). Add hooks where the app "
                "is created: Celery(hooks=[...]) or app.add_hook(...) before the worker starts."
            )
        if before is not None and after is not None:
            raise ValueError("add_hook() takes before= or after=, not both")
        anchor = before or after
        if anchor is None:
            index = len(self._hooks)
        else:
            found = [i for i, h in enumerate(self._hooks) if isinstance(h, anchor)]
            if not found:
                present = ", ".join(type(h).__name__ for h in self._hooks) or "none"
                raise ValueError(
                    f"add_hook(): no hook of class {anchor.__name__} to place {hook!r} "
                    f"{'before' if before is not None else 'after'}; the app's hooks: {present}"
                )
            index = found[0] if before is not None else found[-1] + 1
        self._hooks.insert(index, hook)
        self._composed.clear()

    def freeze(self) -> None:
        """Fix the list: :meth:`add` raises from now on (a worker calls this as it starts)."""
        self._frozen = True

    def composed(self, key: str, build: Callable[[tuple[Any, ...]], T]) -> T:
        """``build(hooks)``, kept until the list changes: the pipeline a runner composes once."""
        try:
            return self._composed[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._composed[key] = build(tuple(self._hooks))
            return value


__all__ = ["HookList", "SendHook", "provided_hooks", "register_provider"]
