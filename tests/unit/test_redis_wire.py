"""The lean RESP path without a server: the encoder against redis-py's, and the reply parser
against every reply type it reads, whole, split at every byte and in random chunks."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest
import redis
from redis._parsers import BaseParser
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.resp3 import _RESP3Parser
from redis._parsers.socket import SocketBuffer
from redis.exceptions import (
    BusyLoadingError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from celeriac.drivers.redis.wire import Reader, pack


class FakeSocket:
    """Hands out ``chunks`` one per ``recv`` (then end of stream); records what is sent."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = [c for c in chunks if c]
        self.sent = b""
        self.recvs = 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        assert len(chunk) <= size
        return chunk

    def sendall(self, data: bytes) -> None:
        self.sent += data


def read_all(chunks: Iterable[bytes], count: int) -> list[Any]:
    reader = Reader(FakeSocket(chunks))
    replies = [reader.read() for _ in range(count)]
    assert not reader.buffered()
    return replies


# -- the encoder ---------------------------------------------------------------------------

COMMANDS: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "k", "v"),
    ("LPUSH", "q\x06\x163", b"\x00\r\n$5\r\nnot a reply\xff"),
    ("SET", "", b""),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 0, -7, 10**20, 1.5, -0.25, 1e-07, 12345.678),
    ("SET", "ünïcode", "välue ✓"),
    ("SET", "view", memoryview(b"from a view"), bytearray(b"and an array")),
]


def test_pack_writes_the_bytes_redis_py_writes() -> None:
    connection = redis.Connection()
    expected = b"".join(connection.pack_commands(COMMANDS))
    assert pack(COMMANDS) == expected


def test_pack_frames_binary_data_by_length() -> None:
    assert pack([("SET", b"a\r\nb", "")]) == b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
    assert pack([]) == b""


@pytest.mark.parametrize("value", [None, ["list"], {"a": 1}, object()])
def test_pack_refuses_values_redis_cannot_hold(value: object) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        pack([("SET", "k", value)])


# -- the parser: one reply of each type --------------------------------------------------

RESP2: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", b"OK"),
    (b"+\r\n", b""),
    (b":0\r\n", 0),
    (b":-42\r\n", -42),
    (b":9223372036854775807\r\n", 2**63 - 1),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"$4\r\n\r\n\r\n\r\n", b"\r\n\r\n"),
    (b"$3\r\n\x00\xff\x80\r\n", b"\x00\xff\x80"),
    (b"*0\r\n", []),
    (b"*-1\r\n", None),
    (b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n", [1, b"a", None]),
    (b"*2\r\n*2\r\n+a\r\n*0\r\n*1\r\n*1\r\n:7\r\n", [[b"a", []], [[7]]]),
]
RESP3: list[tuple[bytes, Any]] = [
    (b"_\r\n", None),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b",3.25\r\n", 3.25),
    (b",-1\r\n", -1.0),
    (b",inf\r\n", float("inf")),
    (b",-inf\r\n", float("-inf")),
    (
        b"(3492890328409238509324850943850943825024385\r\n",
        3492890328409238509324850943850943825024385,
    ),
    (b"(-12\r\n", -12),
    (b"=15\r\ntxt:Some string\r\n", b"Some string"),
    (b"=4\r\nmkd:\r\n", b""),
    (b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*1\r\n#f\r\n", {b"first": 1, b"second": [False]}),
    (b"%0\r\n", {}),
    (b"~3\r\n+a\r\n:2\r\n_\r\n", [b"a", 2, None]),
    (b"~0\r\n", []),
    (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\ndata\r\n", [b"message", b"ch", b"data"]),
]
REPLIES = RESP2 + RESP3


@pytest.mark.parametrize(("wire", "value"), REPLIES, ids=[repr(w[:12]) for w, _ in REPLIES])
def test_each_reply_type(wire: bytes, value: Any) -> None:
    (got,) = read_all([wire], 1)
    assert got == value
    assert type(got) is type(value)


def test_a_nan_double() -> None:
    (got,) = read_all([b",nan\r\n"], 1)
    assert got != got  # NaN


def test_replies_read_as_redis_py_reads_them() -> None:
    """redis-py's own parsers (decoding off) give the same values: RESP2 replies by its RESP2
    parser, RESP3 ones by its RESP3 parser (pushes go to its handler, not to the caller)."""
    for parser_class, replies in ((_RESP2Parser, RESP2), (_RESP3Parser, RESP3)):
        for wire, value in replies:
            if wire.startswith(b">"):
                continue
            parser = parser_class(socket_read_size=65536)
            parser._buffer = SocketBuffer(FakeSocket([wire]), 65536, None)
            assert parser._read_response(disable_decoding=True) == value, wire


def test_push_replies_are_told_apart() -> None:
    push = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    reader = Reader(FakeSocket([push + b"$1\r\nx\r\n", push]))
    assert (reader.read(), reader.push) == ([b"subscribe", b"ch", 1], True)
    assert (reader.read(), reader.push) == (b"x", False)
    assert not reader.buffered()
    assert (reader.read(), reader.push) == ([b"subscribe", b"ch", 1], True)


# -- replies split across reads ----------------------------------------------------------

STREAM = b"".join(wire for wire, _ in REPLIES)
VALUES = [value for _, value in REPLIES]


@pytest.mark.parametrize(("wire", "value"), REPLIES, ids=[repr(w[:12]) for w, _ in REPLIES])
def test_a_reply_split_at_every_byte(wire: bytes, value: Any) -> None:
    for cut in range(1, len(wire)):
        assert read_all([wire[:cut], wire[cut:]], 1) == [value], cut


def test_every_reply_one_byte_at_a_time() -> None:
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    socket = FakeSocket(chunks)
    reader = Reader(socket)
    assert [reader.read() for _ in VALUES] == VALUES
    assert socket.recvs == len(STREAM) and not reader.buffered()


@pytest.mark.parametrize("seed", range(20))
def test_every_reply_in_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    chunks, at = [], 0
    while at < len(STREAM):
        size = rng.randint(1, 40)
        chunks.append(STREAM[at : at + size])
        at += size
    assert read_all(chunks, len(VALUES)) == VALUES


def test_several_replies_in_one_read() -> None:
    socket = FakeSocket([STREAM])
    reader = Reader(socket)
    first = reader.read()
    assert first == VALUES[0] and reader.buffered()
    assert [reader.read() for _ in VALUES[1:]] == VALUES[1:]
    assert socket.recvs == 1 and not reader.buffered()


def test_end_of_stream_mid_reply_is_a_connection_error() -> None:
    reader = Reader(FakeSocket([b"$10\r\nhalf"]))
    with pytest.raises(redis.ConnectionError, match="closed"):
        reader.read()


@pytest.mark.parametrize(
    "wire",
    [
        b"|1\r\n+a\r\n+b\r\n:1\r\n",
        b"?what\r\n",
        b"hello\r\n",
        b":abc\r\n",
        b"$x\r\n",
        b"*1\r\n,1.2.3\r\n",
    ],
)
def test_a_reply_type_not_read_is_a_connection_error(wire: bytes) -> None:
    """Attributes (``|``, which redis-py does not read either), unknown types and malformed
    numbers: the connection is in an unknown state, so the caller drops it and its retry
    policy reconnects (a ValueError would escape that policy)."""
    with pytest.raises(redis.ConnectionError, match="Unexpected reply"):
        Reader(FakeSocket([wire])).read()


# -- error replies ---------------------------------------------------------------------------

ERRORS = [
    ("ERR unknown command 'NOPE'", ResponseError),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", ResponseError),
    ("NOSCRIPT No matching script. Please use EVAL.", NoScriptError),
    ("READONLY You can't write against a read only replica.", ReadOnlyError),
    ("OOM command not allowed when used memory > 'maxmemory'.", OutOfMemoryError),
    ("Some free-form error", ResponseError),
]


@pytest.mark.parametrize(("text", "kind"), ERRORS)
def test_an_error_reply_is_the_exception_redis_py_raises(
    text: str, kind: type[ResponseError]
) -> None:
    """Returned, not raised (a pipeline's other replies are still read); the same class and
    message as redis-py's, so callers catch the same things on both paths."""
    expected = BaseParser.parse_error(text)
    for wire in (b"-%b\r\n" % text.encode(), b"!%d\r\n%b\r\n" % (len(text), text.encode())):
        socket = FakeSocket([wire + b":1\r\n"])
        reader = Reader(socket)
        error = reader.read()
        assert type(error) is kind is type(expected)
        assert str(error) == str(expected)
        assert reader.read() == 1


def test_an_error_inside_an_array_is_returned_in_place() -> None:
    (reply,) = read_all([b"*2\r\n:1\r\n-ERR inner\r\n"], 1)
    assert reply[0] == 1 and isinstance(reply[1], ResponseError) and str(reply[1]) == "inner"


def test_a_connection_level_error_reply_is_raised() -> None:
    """``LOADING`` is a connection error to redis-py (retried, not returned to the caller)."""
    reader = Reader(FakeSocket([b"-LOADING Redis is loading the dataset in memory\r\n"]))
    with pytest.raises(BusyLoadingError, match="Redis is loading"):
        reader.read()
