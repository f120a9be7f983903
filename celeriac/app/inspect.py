"""``app.control.inspect()``: read-only questions to workers, answered ``{node: reply}``.

``app.control.inspect(destination=["w1@h"], timeout=1.0).active()`` -> ``{"w1@h": [...]}``,
or ``None`` when no worker answered within ``timeout`` (as Celery).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac.utils.missing import REMOTE_CONTROL

if TYPE_CHECKING:
    from celeriac.app.control import Control
    from celeriac.transports.base import Transport


def _not_yet(name: str) -> Callable[..., NoReturn]:
    """A Celery inspect method celeriac workers do not answer yet: raises when called."""

    def method(self: Inspect, *args: Any, **kwargs: Any) -> NoReturn:
        raise REMOTE_CONTROL.error(f"app.control.inspect().{name}()")

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Celery's ``{name}``: not in celeriac yet (raises NotYetImplemented)."
    return method


class Inspect:
    """Celery's ``Inspect``: one method per inspect command (``objgraph`` and ``hello``, which
    celeriac workers do not answer, raise NotYetImplemented saying what to use instead)."""

    objgraph = _not_yet("objgraph")
    hello = _not_yet("hello")

    def __init__(
        self,
        control: Control,
        destination: Sequence[str] | str | None = None,
        timeout: float = 1.0,
        callback: Callable[[dict[str, Any]], None] | None = None,
        connection: Transport | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.connection = connection
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        destination = self.destination
        if isinstance(destination, str):
            destination = [destination]
        replies = self.control.broadcast(
            command,
            arguments=arguments,
            destination=destination,
            connection=self.connection,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
            pattern=self.pattern,
            matcher=self.matcher,
        )
        if not replies:
            return None
        by_node: dict[str, Any] = {}
        for reply in replies:
            by_node.update(reply)
        if isinstance(self.destination, str):
            return by_node.get(self.destination)
        return by_node

    # -- the commands ------------------------------------------------------------------------
    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def clock(self) -> dict[str, Any] | None:
        return self._request("clock")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("active", safe=safe)

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("scheduled")

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("reserved")

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, Any] | None:
        flat: list[str] = []
        for item in ids:
            flat.extend([item] if isinstance(item, str) else list(item))
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)

    def report(self) -> dict[str, Any] | None:
        return self._request("report")

    def memdump(self, samples: int = 10) -> dict[str, Any] | None:
        return self._request("memdump", samples=samples)

    def memsample(self) -> dict[str, Any] | None:
        return self._request("memsample")


#: The inspect commands, as ``celeriac inspect <name>`` offers them.
INSPECT_COMMANDS = (
    "active",
    "active_queues",
    "clock",
    "conf",
    "memdump",
    "memsample",
    "ping",
    "query_task",
    "registered",
    "report",
    "reserved",
    "revoked",
    "scheduled",
    "stats",
)

__all__ = ["INSPECT_COMMANDS", "Inspect"]
