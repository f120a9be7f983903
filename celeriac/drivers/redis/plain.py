"""The hot Redis commands over plain redis-py, for ``redis_lean_resp = False``.

:class:`PlainWire` is a :class:`~celeriac.drivers.redis.wire.Wire` that sends through the
client itself (its pool, its parser): the same commands, so the same bytes on the wire, and
the same replies and exceptions, at redis-py's cost per command. It is the way out should the
lean path (which reads redis-py's private ``conn._sock``) ever disagree with a redis-py
release or a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from celeriac.drivers.redis import client as redis_conn
from celeriac.drivers.redis.wire import OnReplies, Wire


class PlainWire(Wire):
    """:class:`Wire`'s calls over redis-py: one command with ``execute_command``, several in
    one non-transactional pipeline (one write, as the lean path sends them)."""

    def execute(self, client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands``, read every reply; raise the first error reply."""
        return self._run(client, commands, raise_on_error=True)

    def send(
        self, client: redis.Redis, commands: Sequence[Sequence[Any]], on_replies: OnReplies
    ) -> None:
        """Run ``commands`` now; ``on_replies`` gets their replies (error replies as exception
        objects) or the connection error that lost them, as with the lean path."""
        try:
            replies: list[Any] | BaseException = self._run(client, commands, raise_on_error=False)
        except redis_conn.CONNECTION_ERRORS as exc:
            replies = exc
        on_replies(replies)

    def flush(self) -> None:
        """Nothing is owed: :meth:`send` reads its replies at once."""

    def close(self) -> None:
        """Nothing of its own to close: connections belong to the client's pool."""

    @staticmethod
    def _run(
        client: redis.Redis, commands: Sequence[Sequence[Any]], *, raise_on_error: bool
    ) -> list[Any]:
        if len(commands) == 1:
            try:
                return [client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except redis.ResponseError as exc:
                if raise_on_error:
                    raise
                return [exc]
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        return list(pipe.execute(raise_on_error=raise_on_error))


__all__ = ["PlainWire"]
