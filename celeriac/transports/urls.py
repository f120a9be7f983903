"""Broker URL -> Transport: one literal table of the schemes this version serves.

``None`` or ``""`` means the embedded SQLite broker in the working directory. Schemes that
Celery users write and celeriac will serve later (Redis, RabbitMQ, PostgreSQL) are recognised
and refused with a clear message; anything else gets a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import ImproperlyConfigured
from celeriac.transports.base import Transport
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.sqlite import DEFAULT_PATH, SQLiteTransport

TRANSPORTS: dict[str, type[Transport]] = {
    "memory": MemoryTransport,
    "sqlite": SQLiteTransport,
    "sqla+sqlite": SQLiteTransport,
}

#: Recognised schemes whose transports are not in this version yet.
KNOWN_SCHEMES: tuple[str, ...] = (
    "redis",
    "rediss",
    "redis+socket",
    "sentinel",
    "amqp",
    "amqps",
    "pyamqp",
    "librabbitmq",
    "postgresql",
    "postgres",
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


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``****`` (also in ``;``-separated lists)."""
    return ";".join(_mask_one(part) for part in url.split(";"))


def _mask_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    # The last '@' ends the user info: an unencoded '@' in a password stays masked.
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return url
    return f"{scheme}://{user}:****@{host}{slash}{path}"


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
    transport_class = TRANSPORTS.get(scheme)
    if transport_class is not None:
        if "://" not in url:
            url = f"{scheme}://"
        return transport_class(url, options)
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
