"""Broker URL -> transport table, masking and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.protocol.message import Message
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.schemes import KNOWN_SCHEMES, TRANSPORTS, transport_from_url
from celeriac.transports.sqlite.transport import SQLiteTransport, path_from_url


def test_no_url_means_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in (None, ""):
        transport = transport_from_url(url)
        assert isinstance(transport, SQLiteTransport)
        assert transport.path == str(tmp_path / "celeriac-broker.sqlite")
    custom = transport_from_url(None, default_path="other.db")
    assert isinstance(custom, SQLiteTransport)
    assert custom.path == str(tmp_path / "other.db")


def test_sqlite_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert path_from_url("sqlite:///relative/path.db") == "relative/path.db"
    assert path_from_url("sqlite:////abs/path.db") == "/abs/path.db"
    assert path_from_url("sqla+sqlite:///x.db") == "x.db"
    assert path_from_url("sqlite://") == "celeriac-broker.sqlite"
    alias = transport_from_url("sqla+sqlite:///x.db")
    assert isinstance(alias, SQLiteTransport)
    assert alias.path == str(tmp_path / "x.db")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://host/x.db"])
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        transport_from_url(url)


def test_memory_urls_share_state_per_name() -> None:
    first = transport_from_url("memory://shared-url-test")
    second = transport_from_url("memory://shared-url-test")
    other = transport_from_url("memory://other-url-test")
    assert isinstance(first, MemoryTransport)
    assert isinstance(transport_from_url("memory://"), MemoryTransport)
    first.publish(first_message(), routing_key="q")
    assert second.size("q") == 1
    assert other.size("q") == 0
    assert second.purge("q") == 1


def first_message() -> Message:
    return Message(b"x", "application/json", "utf-8")


def test_options_reach_the_transport() -> None:
    transport = transport_from_url("sqlite:///x.db", {"visibility_timeout": "12"})
    assert isinstance(transport, SQLiteTransport)
    assert transport.visibility_timeout == 12.0
    with pytest.raises(ImproperlyConfigured, match="visibility_timeout"):
        transport_from_url("sqlite:///x.db", {"visibility_timeout": "soon"})


def test_table_is_literal_and_complete() -> None:
    assert set(TRANSPORTS) == {
        "memory", "sqlite", "sqla+sqlite",
        "redis", "rediss", "redis+socket", "socket", "sentinel",
        "amqp", "amqps", "pyamqp",
        "postgresql", "postgres", "postgresql+psycopg",
    }  # fmt: skip
    assert TRANSPORTS["memory"]() is MemoryTransport
    assert TRANSPORTS["sqlite"]() is SQLiteTransport
    for scheme, load in TRANSPORTS.items():
        assert scheme in load().schemes


def test_a_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    monkeypatch.delitem(sys.modules, "celeriac.transports.redis.transport", raising=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        transport_from_url("redis://localhost:6379/0")
    assert str(caught.value) == (
        "The Redis broker needs the 'redis' package: pip install 'celeriac[redis]'"
    )


def test_unknown_scheme_suggests_the_nearest() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        transport_from_url("ampq://guest:guest@localhost//")
    assert str(caught.value) == (
        "Unknown broker scheme 'ampq' in 'ampq://guest:**@localhost//'. Did you mean amqp://?"
    )
    with pytest.raises(ImproperlyConfigured, match="Did you mean redis://"):
        transport_from_url("reddis://localhost")


def test_unknown_scheme_without_a_near_one_lists_what_is_served() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"serves memory://, sqlite://"):
        transport_from_url("zzzz://u:secret@host")


@pytest.mark.parametrize("scheme", KNOWN_SCHEMES)
def test_known_but_unavailable_schemes(scheme: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        transport_from_url(f"{scheme}://user:secret@localhost")
    assert str(caught.value) == (
        f"Broker scheme '{scheme}' is not available in this version of celeriac yet"
    )


def test_url_without_scheme() -> None:
    with pytest.raises(ImproperlyConfigured, match="has no scheme"):
        transport_from_url("localhost:6379")
    assert isinstance(transport_from_url("memory"), MemoryTransport)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@localhost//", "amqp://guest:**@localhost//"),
        ("redis://:s3cr3t@host:6379/0", "redis://:**@host:6379/0"),
        ("redis://user:p@ss@host/0", "redis://user:**@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("amqp://u@host//", "amqp://u@host//"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
        ("amqp://a:1@h1//;amqp://b:2@h2//", "amqp://a:**@h1//;amqp://b:**@h2//"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
