"""Broker URL -> Transport: one literal table of the schemes this version serves.

``None`` or ``""`` means the embedded SQLite broker in the working directory. Schemes that
Celery users write and celeriac does not serve yet are recognised and refused with a clear
message; anything else gets a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.transports.base import Transport
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.sqlite.transport import DEFAULT_PATH, SQLiteTransport
from celeriac.utils.optional import needs


def _redis() -> type[Transport]:
    # lazy: redis-py is an extra
    from celeriac.transports.redis.transport import RedisTransport

    return RedisTransport


def _amqp() -> type[Transport]:
    # lazy: py-amqp is an extra
    from celeriac.transports.amqp.transport import AMQPTransport

    return AMQPTransport


def _postgres() -> type[Transport]:
    # lazy: psycopg is an extra
    from celeriac.transports.postgres.transport import PostgresTransport

    return PostgresTransport


# Brokers whose client library is an extra are imported when first used, so the core
# install (the embedded SQLite broker) needs nothing else.
_REDIS = needs("redis", "redis", "The Redis broker", _redis)
_AMQP = needs("amqp", "amqp", "The RabbitMQ broker", _amqp)
_POSTGRES = needs("psycopg", "postgres", "The PostgreSQL broker", _postgres)

TRANSPORTS: dict[str, Callable[[], type[Transport]]] = {
    "memory": lambda: MemoryTransport,
    "sqlite": lambda: SQLiteTransport,
    "sqla+sqlite": lambda: SQLiteTransport,
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+socket": _REDIS,
    "socket": _REDIS,
    "sentinel": _REDIS,
    "amqp": _AMQP,
    "amqps": _AMQP,
    "pyamqp": _AMQP,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "postgresql+psycopg": _POSTGRES,
}

#: Recognised schemes whose transports are not in this version yet.
KNOWN_SCHEMES: tuple[str, ...] = (
    "librabbitmq",
    "sqla+postgresql",
    "sqla+postgres",
    "sqla+postgresql+psycopg",
    "sqla+postgresql+psycopg2",
)

#: kombu transports that celeriac does not plan to serve.
UNSUPPORTED_SCHEMES: tuple[str, ...] = (
    "sqs",
    "filesystem",
    "mongodb",
    "zookeeper",
    "confluentkafka",
    "qpid",
    "consul",
    "etcd",
    "azureservicebus",
    "azurestoragequeues",
    "gcpubsub",
    "pyro",
)


def scheme_of(url: str) -> str:
    """The lower-cased scheme of the first URL of a ``;``-separated list."""
    first = url.split(";", 1)[0].strip()
    scheme, sep, _rest = first.partition("://")
    if not sep:
        # A bare transport name (``"memory"``) is accepted, as kombu does.
        return first.lower() if first.lower() in _all_schemes() else ""
    return scheme.lower()


def _all_schemes() -> list[str]:
    return [*TRANSPORTS, *KNOWN_SCHEMES, *UNSUPPORTED_SCHEMES]


def transport_from_url(
    url: str | None,
    options: Mapping[str, Any] | None = None,
    *,
    default_path: str = DEFAULT_PATH,
) -> Transport:
    """A new, unopened Transport for ``url`` (None or ``""``: SQLite at ``default_path``).

    Raises:
        ImproperlyConfigured: the scheme is unknown, not yet available, or not supported.
    """
    if not url:
        return SQLiteTransport("sqlite:///" + default_path, options)
    scheme = scheme_of(url)
    load = TRANSPORTS.get(scheme)
    if load is not None:
        if "://" not in url:
            url = f"{scheme}://"
        return load()(url, options)
    raise ImproperlyConfigured(_refusal(scheme, url))


def _refusal(scheme: str, url: str) -> str:
    shown = mask_url(url)
    if scheme in KNOWN_SCHEMES:
        return f"Broker scheme {scheme!r} is not available in this version of celeriac yet"
    if scheme in UNSUPPORTED_SCHEMES:
        return f"Broker scheme {scheme!r} (in {shown!r}) is not supported by celeriac"
    if not scheme:
        return (
            f"Broker URL {shown!r} has no scheme; write for example "
            "redis://localhost:6379/0, amqp://guest@localhost// or sqlite:///broker.db"
        )
    message = f"Unknown broker scheme {scheme!r} in {shown!r}."
    close = difflib.get_close_matches(scheme, _all_schemes(), n=1)
    if close:
        return f"{message} Did you mean {close[0]}://?"
    served = ", ".join(f"{name}://" for name in TRANSPORTS)
    return f"{message} This version serves {served}"


__all__ = [
    "KNOWN_SCHEMES",
    "TRANSPORTS",
    "UNSUPPORTED_SCHEMES",
    "mask_url",
    "scheme_of",
    "transport_from_url",
]
