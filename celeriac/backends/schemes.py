"""``result_backend`` URL -> backend instance, through one literal table."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING

from celeriac.backends.base import ResultBackend
from celeriac.backends.disabled import DisabledBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.rpc import RPCBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils.optional import needs

if TYPE_CHECKING:
    from celeriac.app.config import Settings


def _redis() -> type[ResultBackend]:
    # lazy: redis-py is an extra
    from celeriac.backends.redis import RedisBackend

    return RedisBackend


def _database() -> type[ResultBackend]:
    # lazy: SQLAlchemy is an extra
    from celeriac.backends.database.backend import DatabaseBackend

    return DatabaseBackend


# The client libraries are extras: imported when a backend's URL is first used.
_REDIS = needs("redis", "redis", "The Redis result backend", _redis)
_DATABASE = needs("sqlalchemy", "sqlalchemy", "The SQLAlchemy result backend", _database)

#: The SQLAlchemy backend's schemes (``db+`` and the dialect, with or without a driver).
DATABASE_SCHEMES = (
    "db+postgresql",
    "db+postgres",
    "db+postgresql+psycopg",
    "db+postgresql+psycopg2",
    "db+mysql",
    "db+mysql+pymysql",
    "db+mysql+mysqldb",
    "db+mariadb",
    "db+mariadb+pymysql",
    "db+sqlite+pysqlite",
)

BACKENDS: dict[str, Callable[[], type[ResultBackend]]] = {
    "cache+memory": lambda: MemoryBackend,
    "memory": lambda: MemoryBackend,
    "db+sqlite": lambda: SQLiteBackend,
    **dict.fromkeys(DATABASE_SCHEMES, _DATABASE),
    "disabled": lambda: DisabledBackend,
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+socket": _REDIS,
    "socket": _REDIS,
    "sentinel": _REDIS,
    "rpc": lambda: RPCBackend,
}

# Celery result backends that celeriac does not provide (yet): named, so users get a clear
# message instead of "unknown scheme".
LATER: frozenset[str] = frozenset(
    {
        "db+oracle", "db+mssql", "database", "cache",
        "cache+memcached", "cache+pylibmc", "mongodb", "mongodb+srv", "cassandra",
        "elasticsearch", "elasticsearch+https", "couchdb", "couchbase", "dynamodb",
        "azureblockblob", "file", "consul", "arangodb", "cosmosdbsql", "s3", "gs",
    }
)  # fmt: skip


def scheme_of(url: str) -> str:
    """``redis://h`` -> ``redis``; a bare alias such as ``rpc`` is its own scheme."""
    return url.split("://", 1)[0].lower() if "://" in url else url.strip().lower()


def backend_from_url(url: str | None, conf: Settings) -> ResultBackend:
    """Build the backend named by ``url``; an empty URL gives the ``DisabledBackend``.

    Raises:
        ImproperlyConfigured: the scheme is unknown (with the nearest known one) or belongs
            to a Celery backend celeriac does not provide yet.
    """
    if not url:
        return DisabledBackend("disabled://", conf)
    scheme = scheme_of(url)
    load = BACKENDS.get(scheme)
    if load is not None:
        return load()(url if "://" in url else f"{scheme}://", conf)
    if scheme in LATER or scheme.startswith("db+"):
        raise ImproperlyConfigured(
            f"Result backend {scheme!r} is not available in this version of celeriac yet "
            f"(result_backend={mask_url(url)!r}). Available: {', '.join(sorted(BACKENDS))}."
        )
    raise ImproperlyConfigured(_unknown_message(scheme, url))


def _unknown_message(scheme: str, url: str) -> str:
    known = sorted(set(BACKENDS) | LATER)
    match = difflib.get_close_matches(scheme, known, n=1, cutoff=0.6)
    hint = f" Did you mean {match[0]}://?" if match else ""
    return (
        f"Unknown result backend {scheme!r} in result_backend={mask_url(url)!r}.{hint} "
        f"Available: {', '.join(sorted(BACKENDS))}."
    )


__all__ = ["BACKENDS", "LATER", "backend_from_url", "scheme_of"]
