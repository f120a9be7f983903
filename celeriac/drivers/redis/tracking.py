"""Waiting for lists to change without taking from them: ``CLIENT TRACKING ... BCAST``.

``BRPOP`` takes the message it waits for. Should the connection break after the server popped
it and before its reply arrived (a network cut, a proxy closing), that message is gone: kombu
has the same window. A :class:`KeyWatch` waits instead on the invalidation messages the server
sends when a watched key changes (Redis 6 and later, no server configuration); nothing is taken
until the caller pops and records in one script, so a broken connection loses nothing.

RESP3 connections receive the invalidations as pushes on the watching connection itself; a
RESP2 connection redirects them to itself and subscribes to ``__redis__:invalidate``. One
connection per thread, kept out of the client's pool while it watches.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.exceptions import ResponseError

from celeriac.drivers.redis.wire import Reader, pack
from celeriac.utils import forksafe

#: The channel a RESP2 connection hears invalidations on.
INVALIDATE_CHANNEL = b"__redis__:invalidate"


def prefixes_of(keys: Iterable[str]) -> tuple[str, ...]:
    """The fewest prefixes that cover ``keys`` (the server refuses overlapping prefixes:
    ``Q`` covers ``Q`` and its priority lists ``Q\\x06\\x163``, and a queue ``Qa`` too)."""
    kept: list[str] = []
    for key in sorted(set(keys)):
        if not kept or not key.startswith(kept[-1]):
            kept.append(key)
    return tuple(kept)


class _Slot(threading.local):
    pid: int = 0
    owner: Any = None
    conn: Any = None
    reader: Reader | None = None
    prefixes: tuple[str, ...] = ()
    watched: frozenset[bytes] = frozenset()
    changed: bool = False


class KeyWatch:
    """Hears changes of a set of keys. :meth:`arm` before looking at the keys, then
    :meth:`wait`: a change made after the look is always heard.

    ``unsupported`` holds the server's answer once it refused tracking (Redis before 6, or a
    proxy that does not pass ``CLIENT TRACKING``); :meth:`arm` then returns False and the
    caller waits its own way."""

    def __init__(self) -> None:
        self._slot = _Slot()
        self.unsupported: str | None = None

    def arm(self, client: redis.Redis, keys: Sequence[str]) -> bool:
        """Watch ``keys`` from now on (connecting if needed) and forget what was heard so far.
        Connection errors are raised (the caller's retry policy handles them)."""
        if self.unsupported is not None:
            return False
        slot = self._slot
        prefixes = prefixes_of(keys)
        fresh = (
            slot.reader is None
            or slot.pid != forksafe.pid()
            or slot.owner is not client
            or slot.prefixes != prefixes
        )
        try:
            if fresh:
                self.close()
                if not self._connect(client, prefixes):
                    return False
            else:
                self._read_ready(0.0)
        except BaseException:
            self.close()
            raise
        slot.watched = frozenset(k.encode() for k in keys)
        slot.changed = False
        return True

    def wait(self, timeout: float) -> bool:
        """Until a watched key changes (True) or ``timeout`` passes (False)."""
        slot = self._slot
        if slot.reader is None or slot.pid != forksafe.pid():
            return True  # not watching (closed meanwhile): look again
        deadline = time.monotonic() + timeout
        try:
            while not slot.changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._read_ready(remaining):
                    break
        except BaseException:
            self.close()
            raise
        return slot.changed

    def close(self) -> None:
        slot = self._slot
        conn, owner, slot.conn, slot.reader = slot.conn, slot.owner, None, None
        slot.prefixes, slot.watched, slot.changed = (), frozenset(), False
        if conn is not None and slot.pid == forksafe.pid():
            conn.disconnect()
            with contextlib.suppress(Exception):
                owner.connection_pool.release(conn)

    # -- the connection ----------------------------------------------------------------------
    def _connect(self, client: redis.Redis, prefixes: tuple[str, ...]) -> bool:
        slot = self._slot
        conn: Any = client.connection_pool.get_connection()
        slot.pid, slot.owner, slot.conn = forksafe.pid(), client, conn
        if conn._sock is None:
            conn.connect()
        reader = Reader(conn._sock)
        tracking: list[Any] = ["CLIENT", "TRACKING", "ON", "BCAST"]
        for prefix in prefixes:
            tracking += ["PREFIX", prefix]
        if getattr(conn, "protocol", 2) in (3, "3"):
            reader.sock.sendall(pack([tracking]))
            answer = reader.read()
        else:
            reader.sock.sendall(pack([("CLIENT", "ID")]))
            ident = reader.read()
            if isinstance(ident, ResponseError):
                answer = ident
            else:
                redirected = [*tracking[:3], "REDIRECT", ident, *tracking[3:]]
                reader.sock.sendall(pack([redirected, ("SUBSCRIBE", INVALIDATE_CHANNEL)]))
                answer, _subscribed = reader.read(), reader.read()
        if isinstance(answer, ResponseError):
            self.unsupported = str(answer)
            self.close()
            return False
        slot.reader, slot.prefixes = reader, prefixes
        return True

    def _read_ready(self, timeout: float) -> bool:
        """Read every message that arrives within ``timeout`` (0: what is there now); False
        when nothing came."""
        slot = self._slot
        reader = slot.reader
        assert reader is not None
        sock = reader.sock
        got = False
        while True:
            ready = reader.buffered() or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0)
            if not ready and not select.select([sock], [], [], 0.0 if got else timeout)[0]:
                return got
            self._heard(reader.read())
            got = True

    def _heard(self, message: Any) -> None:
        if isinstance(message, ResponseError):
            raise message
        if not isinstance(message, list) or len(message) < 2:
            return
        if message[0] == b"invalidate":  # RESP3 push: [invalidate, keys]
            keys = message[1]
        elif message[0] == b"message" and len(message) > 2:  # RESP2: [message, channel, keys]
            keys = message[2]
        else:
            return  # a subscribe confirmation
        slot = self._slot
        if keys is None or any(key in slot.watched for key in keys):  # None: FLUSHDB
            slot.changed = True


__all__ = ["INVALIDATE_CHANNEL", "KeyWatch", "prefixes_of"]
