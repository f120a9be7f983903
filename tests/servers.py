"""Connection facts of the real servers on development and CI machines, and skip-or-fail.

A test that needs a server calls ``require_<server>()``: when the server is unreachable the
test is skipped locally and FAILS when the ``CI`` environment variable is set (a CI machine
always runs them). Each test run works in its own database / DB number / vhost and removes
only what it created.
"""

from __future__ import annotations

import atexit
import os
import socket
from typing import NoReturn

import pytest

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
#: The server URL without a database; append ``/<database>``.
POSTGRES_SERVER_URL = f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}"

MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = 3306
MYSQL_USER = "root"

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: Redis databases owned by the test suite (never FLUSHDB'd: tests delete their own keys).
REDIS_BROKER_DB = 13
REDIS_RESULTS_DB = 14
REDIS_INTEROP_DB = 15


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def require_redis() -> None:
    if not port_open(REDIS_HOST, REDIS_PORT):
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")


_redis_cleanups: set[tuple[int, str]] = set()


def redis_namespace(db: int, pattern: str) -> str:
    """Require Redis and delete ``db``'s keys matching ``pattern`` when this run ends."""
    require_redis()
    if (db, pattern) not in _redis_cleanups:
        _redis_cleanups.add((db, pattern))
        atexit.register(delete_redis_keys, db, pattern)
    return redis_url(db)


def delete_redis_keys(db: int, pattern: str) -> int:
    """Delete the keys of ``db`` matching ``pattern`` (SCAN, never FLUSHDB); how many."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def unavailable(what: str) -> NoReturn:
    """Skip (locally) or fail (``CI`` set) because ``what`` is not reachable."""
    message = f"{what} is not reachable"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so server tests must run)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if not port_open(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}")


def require_mysql() -> None:
    if not port_open(MYSQL_HOST, MYSQL_PORT):
        unavailable(f"MariaDB/MySQL at {MYSQL_HOST}:{MYSQL_PORT}")


def create_postgres_database(name: str) -> str:
    """Create database ``name`` (dropping a leftover of a crashed run of ours); its URL."""
    import psycopg

    require_postgres()
    with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES_SERVER_URL}/{name}"


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_mysql_database(name: str) -> str:
    """Create database ``name``; its ``mysql+pymysql`` URL (without the ``db+`` prefix)."""
    import pymysql

    require_mysql()
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    return f"mysql+pymysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"


def drop_mysql_database(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


_run_databases: dict[str, str] = {}


def run_database(kind: str) -> str:
    """The SQLAlchemy-style URL of this test run's own database on ``kind`` (``postgres`` or
    ``mysql``), created on first use and dropped when the run ends."""
    url = _run_databases.get(kind)
    if url is not None:
        return url
    name = f"celeriac_test_{os.getpid()}"
    if kind == "postgres":
        url = create_postgres_database(name)
        atexit.register(drop_postgres_database, name)
    else:
        url = create_mysql_database(name)
        atexit.register(drop_mysql_database, name)
    _run_databases[kind] = url
    return url


RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
RABBITMQ_USER = "guest"
RABBITMQ_PASSWORD = "guest"
_run_vhost: list[str] = []


def require_rabbitmq() -> None:
    if not port_open(RABBITMQ_HOST, RABBITMQ_PORT):
        unavailable(f"RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT}")


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def delete_rabbitmq_vhost(name: str) -> None:
    _rabbitmqctl("delete_vhost", name)


def rabbitmq_url(scheme: str = "amqp") -> str:
    """The URL of this test run's own RabbitMQ vhost (created on first use with rabbitmqctl,
    guest given every permission, deleted when the run ends)."""
    require_rabbitmq()
    if not _run_vhost:
        name = f"celeriac-test-{os.getpid()}"
        _rabbitmqctl("add_vhost", name)
        atexit.register(delete_rabbitmq_vhost, name)
        _rabbitmqctl("set_permissions", "-p", name, RABBITMQ_USER, ".*", ".*", ".*")
        _run_vhost.append(name)
    credentials = f"{RABBITMQ_USER}:{RABBITMQ_PASSWORD}"
    return f"{scheme}://{credentials}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{_run_vhost[0]}"
