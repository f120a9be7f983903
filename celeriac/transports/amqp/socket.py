"""py-amqp connections that read the socket in chunks.

py-amqp's TCP transport asks the socket for exactly the bytes it needs next: a frame header,
then its payload, then the frame-end octet, so one task message (three frames) costs about ten
``recv`` calls. This transport asks for at least :data:`CHUNK` bytes and serves the following
reads from what it already has, which takes the count to one call for several messages.

Reads with a timeout leave the socket in blocking mode: py-amqp switches it to timeout mode and
back around every frame read (two ``ioctl`` calls, each a chance for another thread to take the
GIL); here a read that must not block asks with ``MSG_DONTWAIT`` and a read with a deadline
waits in ``select`` first, so a frame already buffered costs no system call at all.

It goes through py-amqp's own extension point (``Connection.Transport``); TLS connections keep
py-amqp's transport.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import ssl
import time
from typing import Any

import amqp
import amqp.transport

#: The least a read asks the socket for (a few messages; small enough to slice cheaply).
CHUNK = 4096
_RETRY = (errno.EAGAIN, errno.EINTR)


class ChunkedTCPTransport(amqp.transport.TCPTransport):  # type: ignore[misc]
    """py-amqp's TCP transport, reading ahead, with timeouts kept off the socket."""

    _read_buffer: bytes
    #: While a read has a timeout: ``time.monotonic()`` by which it must have its bytes
    #: (``0.0``: only what is there now). ``None``: block, as the socket does.
    _deadline: float | None = None

    def having_timeout(self, timeout: float | None) -> contextlib.AbstractContextManager[Any]:
        sock = self.sock
        if timeout is None or sock is None or sock.gettimeout() is not None:
            return super().having_timeout(timeout)  # type: ignore[no-any-return]
        return _Deadline(self, 0.0 if timeout <= 0 else time.monotonic() + timeout)

    def _read(self, n: int, initial: bool = False, _errnos: tuple[int, ...] = _RETRY) -> bytes:
        rbuf: bytes = self._read_buffer
        if len(rbuf) < n:
            try:
                while len(rbuf) < n:
                    want = max(n - len(rbuf), CHUNK)
                    try:
                        if self._deadline is None:
                            data = self._quick_recv(want)
                        else:
                            data = self._recv_by(want, self._deadline)
                    except OSError as exc:
                        if exc.errno in _errnos:
                            if initial and self.raise_on_initial_eintr:
                                raise TimeoutError from exc
                            continue
                        raise
                    if not data:
                        raise OSError("Server unexpectedly closed connection")
                    rbuf += data
            except BaseException:
                self._read_buffer = rbuf  # keep what arrived: read_frame retries after a timeout
                raise
        result, self._read_buffer = rbuf[:n], rbuf[n:]
        return result

    def _recv_by(self, want: int, deadline: float) -> bytes:
        """Bytes that arrive before ``deadline`` (TimeoutError if none do)."""
        sock = self.sock
        while True:
            try:
                data: bytes = sock.recv(want, socket.MSG_DONTWAIT)
                return data
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic() if deadline else 0.0
            if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                raise TimeoutError("timed out")


class _Deadline:
    """``having_timeout`` for a blocking socket: sets the transport's read deadline (a class,
    not a generator: py-amqp enters it for every frame)."""

    __slots__ = ("_deadline", "_previous", "_transport")

    def __init__(self, transport: ChunkedTCPTransport, deadline: float) -> None:
        self._transport = transport
        self._deadline = deadline
        self._previous: float | None = None

    def __enter__(self) -> Any:
        transport = self._transport
        self._previous, transport._deadline = transport._deadline, self._deadline
        return transport.sock

    def __exit__(self, *exc_info: object) -> None:
        self._transport._deadline = self._previous


class Connection(amqp.Connection):  # type: ignore[misc]
    """``amqp.Connection`` whose plain TCP connections read ahead."""

    def Transport(
        self,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> Any:
        if ssl:
            return super().Transport(
                host,
                connect_timeout,
                ssl=ssl,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                socket_settings=socket_settings,
                **kwargs,
            )
        return ChunkedTCPTransport(
            host,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            socket_settings=socket_settings,
            **kwargs,
        )


def readable(conn: amqp.Connection) -> bool:
    """Anything to read now: bytes py-amqp holds already, or bytes waiting on the socket (a
    cheap check that spares a non-blocking read its timeout exception)."""
    transport: Any = conn.transport
    if transport is None or transport._read_buffer:
        return True
    sock = transport.sock
    if isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted, not yet read
        return True
    return sock is None or bool(select.select([sock], [], [], 0)[0])


__all__ = ["CHUNK", "ChunkedTCPTransport", "Connection", "readable"]
