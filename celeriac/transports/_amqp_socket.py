"""py-amqp connections that read the socket in chunks.

py-amqp's TCP transport asks the socket for exactly the bytes it needs next: a frame header,
then its payload, then the frame-end octet, so one task message (three frames) costs about ten
``recv`` calls. This transport asks for at least :data:`CHUNK` bytes and serves the following
reads from what it already has, which takes the count to one call for several messages. It
goes through py-amqp's own extension point (``Connection.Transport``); TLS connections keep
py-amqp's transport.
"""

from __future__ import annotations

import errno
import select
from typing import Any

import amqp
import amqp.transport

#: The least a read asks the socket for (a few messages; small enough to slice cheaply).
CHUNK = 4096
_RETRY = (errno.EAGAIN, errno.EINTR)


class ChunkedTCPTransport(amqp.transport.TCPTransport):  # type: ignore[misc]
    """py-amqp's TCP transport, reading ahead."""

    _read_buffer: bytes

    def _read(self, n: int, initial: bool = False, _errnos: tuple[int, ...] = _RETRY) -> bytes:
        rbuf: bytes = self._read_buffer
        if len(rbuf) < n:
            recv = self._quick_recv
            try:
                while len(rbuf) < n:
                    try:
                        data = recv(max(n - len(rbuf), CHUNK))
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
    return sock is None or bool(select.select([sock], [], [], 0)[0])


__all__ = ["CHUNK", "ChunkedTCPTransport", "Connection", "readable"]
