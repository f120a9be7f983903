"""A lean RESP path for the hottest Redis commands (publish, pop script, result writes, acks).

redis-py spends about as much CPU per command as the round trip itself (connection pool
checkout, argument filtering, a general parser): for one ``LPUSH`` per ``delay()`` or one
script call per fetched batch that doubles the cost. :class:`Wire` borrows a connection from
the client's own pool for each call (so it is connected, authenticated, on the right database
and TLS-wrapped exactly as configured), writes the commands itself and parses the few reply
types these commands produce. Any error closes that connection, and the callers' retry
policies see redis-py's exceptions.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis._parsers import BaseParser
from redis.exceptions import ResponseError

from celeriac.utils import forksafe


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """RESP arrays of bulk strings for ``commands``."""
    out: list[bytes] = []
    add = out.append
    for command in commands:
        add(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is str:
                data = arg.encode()
            elif kind is bytes:
                data = arg
            elif kind is int or kind is float:
                data = repr(arg).encode()
            elif isinstance(arg, bytes | bytearray | memoryview):
                data = bytes(arg)
            else:
                raise TypeError(f"cannot send {type(arg).__name__} to Redis")
            add(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class Reader:
    """Replies from one socket (RESP2 and the RESP3 types these commands return)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.push = False  # the last top-level reply was a RESP3 push (pub/sub)

    def buffered(self) -> bool:
        return self.pos < len(self.buf)

    def read(self) -> Any:
        """One top-level reply; ``push`` tells whether it was an out-of-band push."""
        self.push = self.buf.startswith(b">", self.pos) or (
            not self.buffered() and self._peek_push()
        )
        try:
            return self._read()
        except ValueError as exc:  # a malformed number: the connection is out of step
            raise redis.ConnectionError(f"Unexpected reply from Redis: {exc}") from exc

    def _peek_push(self) -> bool:
        self._fill()
        return self.buf.startswith(b">", self.pos)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise redis.ConnectionError("Connection closed by server.")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = self.buf[self.pos : end]
        self.pos = end + 2
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = self.buf[self.pos : self.pos + n]
        self.pos += n + 2
        return data

    def _read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind in (b":", b"("):
            return int(rest)
        if kind == b"=":  # verbatim: "txt:" or "mkd:" and the text, as redis-py reads it
            return self._exact(int(rest))[4:]
        if kind in (b"*", b">", b"~"):
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        if kind == b"+":
            return rest
        if kind in (b"-", b"!"):
            text = (rest if kind == b"-" else self._exact(int(rest))).decode(errors="replace")
            return _error(text)
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        if kind == b"%":
            n = int(rest)
            return {self._read(): self._read() for _ in range(n)}
        raise redis.ConnectionError(f"Unexpected reply from Redis: {line[:50]!r}")


def _error(text: str) -> ResponseError:
    """The exception redis-py makes of an error reply (class and message); returned, as in a
    redis-py pipeline, unless redis-py raises it at once (``LOADING``, ``NOAUTH``: errors of
    the connection, which the callers' retry policies handle)."""
    error = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]
    if isinstance(error, ResponseError):
        return error
    raise error


class _Conn:
    """A connection of one thread's own; closed when that thread (or the Wire) goes away."""

    def __init__(self, owner: Any, conn: Any) -> None:
        self.pid = forksafe.pid()
        self.owner = owner
        self.conn = conn
        self.reader = Reader(conn._sock)
        #: Commands sent without waiting: (how many replies, who gets them), oldest first.
        self.pending: list[tuple[int, OnReplies]] = []

    def read_pending(self) -> None:
        """Read the replies of earlier :meth:`Wire.send` calls (they come first)."""
        while self.pending:
            count, on_replies = self.pending[0]
            replies = [self.reader.read() for _ in range(count)]
            self.pending.pop(0)  # only now: a reply lost on the way is reported by close()
            on_replies(replies)

    def close(self) -> None:
        pending, self.pending = self.pending, []
        for _, on_replies in pending:  # sent, never confirmed: tell the sender
            with contextlib.suppress(Exception):
                on_replies(redis.ConnectionError("connection closed before the reply"))
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.pid == forksafe.pid():
            with contextlib.suppress(Exception):
                conn.disconnect()
        else:  # inherited through fork: close our copy, never shut the parent's socket down
            with contextlib.suppress(Exception):
                conn._sock.close()

    def __del__(self) -> None:
        self.close()


#: Gets the replies of commands sent with :meth:`Wire.send` (error replies as exception
#: objects, not raised), or the exception that lost them.
OnReplies = Callable[[list[Any] | BaseException], None]


class _Own(threading.local):
    held: _Conn | None = None


#: Pools whose connections this module may make for itself (a sentinel pool finds its master
#: per connection: there, connections are borrowed from the pool for each call instead).
_PLAIN_POOLS = (redis.ConnectionPool, redis.BlockingConnectionPool)


class Wire:
    """Hot commands for one redis-py client, over a connection of this thread's own, made the
    way the client's pool makes them (connected, authenticated, on the right database and
    TLS-wrapped as configured) but kept out of the pool: no checkout and health check per
    call. Any error closes it; the next call connects again."""

    def __init__(self) -> None:
        self._own = _Own()

    def execute(self, client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write, read every reply; raise the first error reply."""
        pool = client.connection_pool
        if type(pool) not in _PLAIN_POOLS:
            return self._borrowed(pool, commands)
        held = self._connection(client)
        reader = held.reader
        try:
            reader.sock.sendall(pack(commands))
            held.read_pending()
            replies = [reader.read() for _ in commands]
            if reader.buffered():  # never expected: do not keep a confused connection
                raise redis.ConnectionError("Unexpected extra data from Redis")
        except BaseException:
            self.close()
            raise
        return _checked(replies)

    def send(
        self, client: redis.Redis, commands: Sequence[Sequence[Any]], on_replies: OnReplies
    ) -> None:
        """Send ``commands`` now and read their replies later, before the next call's on this
        thread's connection (or at :meth:`flush`); ``on_replies`` gets them."""
        if type(client.connection_pool) not in _PLAIN_POOLS:
            try:
                replies: list[Any] | BaseException = self._borrowed(
                    client.connection_pool, commands
                )
            except ResponseError as exc:
                replies = [exc]
            on_replies(replies)
            return
        held = self._connection(client)
        try:
            held.reader.sock.sendall(pack(commands))
        except BaseException:
            self.close()
            raise
        held.pending.append((len(commands), on_replies))

    def flush(self) -> None:
        """Read the replies still owed to :meth:`send` callers on this thread."""
        held = self._own.held
        if held is None or not held.pending:
            return
        try:
            held.read_pending()
        except BaseException:
            self.close()
            raise

    def _connection(self, client: redis.Redis) -> _Conn:
        held = self._own.held
        if held is None or held.owner is not client or held.pid != forksafe.pid():
            held = self._connect(client)
        return held

    def _connect(self, client: redis.Redis) -> _Conn:
        self.close()
        pool: Any = client.connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        conn.connect()
        held = self._own.held = _Conn(client, conn)
        return held

    def close(self) -> None:
        """Close this thread's connection (another thread's closes with its thread)."""
        held, self._own.held = self._own.held, None
        if held is not None:
            held.close()

    @staticmethod
    def _borrowed(pool: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
        conn: Any = pool.get_connection()
        try:
            if conn._sock is None:
                conn.connect()
            reader = Reader(conn._sock)
            reader.sock.sendall(pack(commands))
            replies = [reader.read() for _ in commands]
            if reader.buffered():  # never expected: do not hand a confused connection back
                raise redis.ConnectionError("Unexpected extra data from Redis")
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return _checked(replies)


def _checked(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


#: Channels a listener stays subscribed to after their get() ended, before one UNSUBSCRIBE.
STALE_CHANNELS = 64


class _ListenSlot(threading.local):
    pid: int = 0
    owner: Any = None
    conn: Any = None
    reader: Reader | None = None
    channels: set[bytes]  # subscribed: the wanted ones and up to STALE_CHANNELS others
    wanted: set[bytes]  # the channels whose messages are kept
    values: dict[bytes, Any]  # channel/key -> the latest document read or heard

    def __init__(self) -> None:
        self.channels = set()
        self.wanted = set()
        self.values = {}


class Listener:
    """Result waiting over one RESP3 connection per thread: ``SUBSCRIBE`` and ``GET`` travel
    together (RESP3 allows commands on a subscribed connection, and one connection keeps
    their order, so a result stored after the read is always heard), and a heard message's
    document is used as the read that follows it: one round trip per ``get()``, not three.

    :meth:`usable` is False for RESP2 connections and TLS (select on an encrypted socket is
    not reliable): the backend then keeps its redis-py pub/sub path.
    """

    def __init__(self) -> None:
        self._slot = _ListenSlot()

    def usable(self, client: redis.Redis) -> bool:
        try:
            self._connect(client)
        except redis.RedisError:
            return False
        slot = self._slot
        ok = slot.conn is not None and getattr(slot.conn, "protocol", 2) in (3, "3")
        if ok and not isinstance(slot.conn._sock, ssl.SSLSocket):
            return True
        self.close()
        return False

    def _connect(self, client: redis.Redis) -> None:
        slot = self._slot
        if slot.conn is not None and slot.pid == forksafe.pid() and slot.owner is client:
            return
        if slot.pid == forksafe.pid():
            self.close()
        conn = client.connection_pool.get_connection()
        if conn._sock is None:
            conn.connect()  # type: ignore[no-untyped-call]
        slot.pid, slot.owner, slot.conn = forksafe.pid(), client, conn
        slot.reader = Reader(conn._sock)
        slot.channels, slot.wanted, slot.values = set(), set(), {}

    def subscribe_and_read(self, client: redis.Redis, keys: Sequence[str]) -> None:
        """Subscribe to ``keys`` and read their values, in one trip; nothing to send when a
        heard document is already waiting for each key. Channels no longer wanted are
        unsubscribed in batches of STALE_CHANNELS (not one UNSUBSCRIBE per ``get()``)."""
        self._connect(client)
        slot = self._slot
        wanted = {k.encode() for k in keys}
        if all(k in slot.values for k in wanted) and wanted <= slot.channels:
            return
        stale, missing = slot.channels - wanted, wanted - slot.channels
        commands: list[Sequence[Any]] = []
        if len(stale) >= STALE_CHANNELS:
            commands.append(("UNSUBSCRIBE", *stale))
        else:
            stale = set()
        if missing:
            commands.append(("SUBSCRIBE", *missing))
        order = sorted(wanted)
        commands += [("GET", k) for k in order]
        reader = slot.reader
        assert reader is not None
        for key in list(slot.values):
            if key not in wanted:
                del slot.values[key]
        try:
            reader.sock.sendall(pack(commands))
            slot.channels = (slot.channels - stale) | wanted
            slot.wanted = wanted
            pending_subs, got = set(missing), 0
            while pending_subs or got < len(order):
                reply = reader.read()
                if reader.push:
                    self._on_push(reply, pending_subs)
                elif isinstance(reply, ResponseError):
                    raise reply
                else:  # replies and pushes arrive in server order: the last one is newest
                    slot.values[order[got]] = reply
                    got += 1
        except BaseException:
            self.close()
            raise

    def subscribed(self, keys: Sequence[str]) -> bool:
        slot = self._slot
        return (
            slot.reader is not None
            and slot.pid == forksafe.pid()
            and {k.encode() for k in keys} <= slot.channels
        )

    def _on_push(self, reply: Any, pending_subs: set[bytes]) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind, channel = reply[0], reply[1]
        if kind == b"subscribe":
            pending_subs.discard(channel)
        elif kind == b"message" and channel in self._slot.wanted:
            self._slot.values[channel] = reply[2]

    def take(self, key: str) -> tuple[bool, Any]:
        """(True, value) once for a value read or heard since the last take."""
        slot = self._slot
        if slot.pid != forksafe.pid():
            return False, None
        k = key.encode()
        if k in slot.values:
            return True, slot.values.pop(k)
        return False, None

    def wait(self, keys: Sequence[str], timeout: float) -> bool:
        """Until a message on one of ``keys`` arrives (True) or ``timeout`` passes."""
        slot = self._slot
        reader = slot.reader
        wanted = {k.encode() for k in keys}
        if reader is None or slot.pid != forksafe.pid() or not wanted <= slot.channels:
            return False
        deadline = time.monotonic() + timeout
        try:
            while not (wanted & slot.values.keys()):
                if not reader.buffered():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if not select.select([reader.sock], [], [], remaining)[0]:
                        return False
                reply = reader.read()
                if reader.push:
                    self._on_push(reply, set())
        except BaseException:
            self.close()
            raise
        return True

    def close(self) -> None:
        slot = self._slot
        conn, slot.conn, slot.reader = slot.conn, None, None
        slot.channels, slot.wanted, slot.values = set(), set(), {}
        if conn is not None and slot.pid == forksafe.pid():
            conn.disconnect()
            with contextlib.suppress(Exception):
                slot.owner.connection_pool.release(conn)


__all__ = ["Listener", "Wire", "pack"]
