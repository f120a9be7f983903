"""Redis connections shared by the Redis broker and the Redis result backend.

One parser for every URL form Celery accepts (``redis://``, ``rediss://``, ``redis+socket://``,
``socket://``, ``sentinel://``), one place that turns options into redis-py connection pools,
and one cache of those pools per process (a pool is never shared across ``fork``).

redis-py's own hidden retries are switched off: the broker and the backend retry explicitly
with Celery's policies (``broker_connection_max_retries``, ``task_publish_retry_policy``), so a
caller never waits longer than those policies say.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.client
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from celeriac.drivers.urls import MASK, mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils import forksafe

#: The errors that mean "the server is unreachable or the connection broke".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    OSError,
)

REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "socket", "sentinel")
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
#: A command that takes longer than this has lost its server (BRPOP waits are sliced below it).
DEFAULT_SOCKET_TIMEOUT = 10.0
_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
    "cert_none": ssl.CERT_NONE,
}
#: Transport/backend options passed to redis-py connections as they are.
_SOCKET_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "health_check_interval",
    "retry_on_timeout",
    "client_name",
)


@dataclass(frozen=True)
class RedisParams:
    """Everything needed to open connections to one Redis database."""

    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None
    path: str | None = None
    ssl: tuple[tuple[str, Any], ...] | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    sentinel_kwargs: tuple[tuple[str, Any], ...] = ()
    connection: tuple[tuple[str, Any], ...] = field(default=())
    max_connections: int | None = None


def _first(url: str) -> str:
    return url.split(";", 1)[0].strip()


def _db_of(text: str | None, url: str) -> int:
    text = (text or "").strip("/")
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ImproperlyConfigured(
            f"Redis URL {mask_url(url)!r}: the database must be a number, not {text!r}"
        ) from None


def ssl_options(raw: Mapping[str, Any] | bool | None, query: Mapping[str, str]) -> dict[str, Any]:
    """redis-py ``ssl_*`` keyword arguments from ``broker_use_ssl`` and the URL's query.

    Celery's names (``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``)
    and kombu's bare ones (``cert_reqs``...) are both accepted; certificates are verified
    unless ``ssl_cert_reqs`` says otherwise.
    """
    merged: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    merged.update({k: v for k, v in query.items() if k.startswith("ssl_")})
    options: dict[str, Any] = {}
    for key, value in merged.items():
        name = key if key.startswith("ssl_") else f"ssl_{key}"
        options[name] = value
    reqs = options.get("ssl_cert_reqs", ssl.CERT_REQUIRED)
    if isinstance(reqs, str):
        found = _CERT_REQS.get(reqs.lower())
        if found is None:
            raise ImproperlyConfigured(
                f"ssl_cert_reqs={reqs!r} is not one of required, optional or none"
            )
        reqs = found
    options["ssl_cert_reqs"] = reqs
    return options


def parse_url(
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    use_ssl: Mapping[str, Any] | bool | None = None,
    connect_timeout: float | None = None,
) -> RedisParams:
    """``url`` and its options as :class:`RedisParams` (the first URL of a ``;`` list).

    ``options`` are broker or backend transport options (socket options, ``master_name``,
    ``sentinel_kwargs``, ``max_connections``); ``use_ssl`` is ``broker_use_ssl`` or
    ``redis_backend_use_ssl``.
    """
    options = dict(options or {})
    first = _first(url)
    parts = urlsplit(first)
    scheme = parts.scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(f"Not a Redis URL: {mask_url(url)!r}")
    query = dict(parse_qsl(parts.query))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    connection = _connection_options(options, connect_timeout)
    common: dict[str, Any] = {
        "scheme": scheme,
        "username": username or None,
        "password": password or query.get("password") or None,
        "connection": tuple(sorted(connection.items())),
        "max_connections": options.get("max_connections"),
    }
    if scheme in ("redis+socket", "socket"):
        db = query.get("virtual_host") or query.get("db")
        return RedisParams(path=parts.path, db=_db_of(db, url), **common)
    if scheme == "sentinel":
        return _sentinel_params(url, options, common)
    wants_ssl = scheme == "rediss" or bool(use_ssl)
    return RedisParams(
        host=parts.hostname or "localhost",
        port=parts.port or DEFAULT_PORT,
        db=_db_of(parts.path or query.get("db"), url),
        ssl=tuple(sorted(ssl_options(use_ssl, query).items())) if wants_ssl else None,
        **common,
    )


def _connection_options(options: Mapping[str, Any], timeout: float | None) -> dict[str, Any]:
    found = {name: options[name] for name in _SOCKET_OPTIONS if options.get(name) is not None}
    found.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    if timeout is not None:
        found.setdefault("socket_connect_timeout", timeout)
    if "socket_keepalive_options" in found:
        found["socket_keepalive_options"] = tuple(sorted(found["socket_keepalive_options"].items()))
    return found


def _sentinel_params(url: str, options: Mapping[str, Any], common: dict[str, Any]) -> RedisParams:
    master = options.get("master_name")
    if not master:
        raise ImproperlyConfigured(
            f"Sentinel URL {mask_url(url)!r} needs master_name in the transport options"
        )
    hosts: list[tuple[str, int]] = []
    db = 0
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        hosts.append((parsed.hostname or "localhost", parsed.port or DEFAULT_SENTINEL_PORT))
        db = _db_of(parsed.path, url) if parsed.path.strip("/") else db
    kwargs = dict(options.get("sentinel_kwargs") or {})
    return RedisParams(
        sentinels=tuple(hosts),
        master_name=str(master),
        sentinel_kwargs=tuple(sorted(kwargs.items())),
        db=db,
        **common,
    )


def describe(params: RedisParams) -> str:
    """Where ``params`` point, for log lines (never with the password)."""
    if params.path:
        return f"{params.scheme}://{params.path}?db={params.db}"
    if params.sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in params.sentinels)
        return f"sentinel://{hosts}/{params.db} (master {params.master_name})"
    user = f"{params.username or ''}:{MASK}@" if params.password else ""
    return f"{params.scheme}://{user}{params.host}:{params.port}/{params.db}"


_POOLS: dict[tuple[int, RedisParams], redis.ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def client(params: RedisParams) -> redis.Redis:
    """A client on this process's shared pool for ``params`` (created on first use)."""
    key = (forksafe.pid(), params)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _make_pool(params)
    return redis.Redis(connection_pool=pool)


def _connection_kwargs(params: RedisParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(params.connection)
    if "socket_keepalive_options" in kwargs:
        kwargs["socket_keepalive_options"] = dict(kwargs["socket_keepalive_options"])
    kwargs.update(db=params.db, username=params.username, password=params.password)
    kwargs["retry"] = Retry(NoBackoff(), 0)  # retries are ours, with Celery's policies
    return kwargs


def _make_pool(params: RedisParams) -> redis.ConnectionPool:
    kwargs = _connection_kwargs(params)
    if params.max_connections:
        kwargs["max_connections"] = int(params.max_connections)
    if params.sentinels:
        # redis-py's hints for these two vary between releases (untyped in some): call them
        # through a typed name instead of an ignore that one release or the other finds unused.
        make_sentinel: Callable[..., redis.sentinel.Sentinel] = redis.sentinel.Sentinel
        make_pool: Callable[..., redis.ConnectionPool] = redis.sentinel.SentinelConnectionPool
        sentinel = make_sentinel(
            list(params.sentinels), sentinel_kwargs=dict(params.sentinel_kwargs) or None
        )
        assert params.master_name is not None
        return make_pool(params.master_name, sentinel, **kwargs)
    if params.path:
        kwargs.pop("socket_keepalive", None)
        kwargs.pop("socket_keepalive_options", None)
        return redis.ConnectionPool(
            connection_class=redis.UnixDomainSocketConnection, path=params.path, **kwargs
        )
    if params.ssl is not None:
        kwargs.update(dict(params.ssl))
        return redis.ConnectionPool(
            connection_class=redis.SSLConnection, host=params.host, port=params.port, **kwargs
        )
    return redis.ConnectionPool(host=params.host, port=params.port, **kwargs)


def disconnect_all() -> None:
    """Close every pooled connection of this process (tests, and after a lost server)."""
    with _POOLS_LOCK:
        pools = [pool for (pid, _), pool in _POOLS.items() if pid == forksafe.pid()]
    for pool in pools:
        pool.disconnect()


__all__ = [
    "CONNECTION_ERRORS",
    "REDIS_SCHEMES",
    "RedisParams",
    "client",
    "describe",
    "disconnect_all",
    "parse_url",
    "ssl_options",
]


def pubsub(client: redis.Redis) -> redis.client.PubSub:
    """A PubSub on ``client`` that also delivers (p)subscribe confirmations.

    ``Redis.pubsub`` is untyped in some redis-py releases and typed in others; the typed name
    keeps mypy clean on both without a ``type: ignore``.
    """
    make: Callable[..., redis.client.PubSub] = client.pubsub
    return make(ignore_subscribe_messages=False)
