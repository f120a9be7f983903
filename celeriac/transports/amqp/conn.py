"""AMQP connection facts: the URL, the settings that shape a connection, connecting with retries.

``amqp://user:password@host:port/vhost`` as kombu reads it: the path without its first ``/`` is
the virtual host, so ``amqp://guest:guest@localhost:5672//`` names ``/`` and a missing path
means ``/`` too; ``pyamqp://`` is the same thing and ``amqps://`` turns TLS on (port 5671).

The transport receives ``broker_transport_options`` merged with the app's broker settings under
their Celery names (``broker_heartbeat``, ``broker_connection_timeout``, ``broker_use_ssl``,
``broker_login_method``, ``broker_connection_max_retries``, ``task_publish_retry``,
``task_publish_retry_policy``, ``task_queue_max_priority``); kombu's own transport option
names (``confirm_publish``, ``heartbeat``, ``connect_timeout``, ``ssl``, ``login_method``,
``max_retries``) are accepted as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import amqp
import amqp.exceptions

from celeriac.drivers.reconnect import RetryPolicy, retry_call, tcp_listening
from celeriac.drivers.tls import PY_AMQP_NAMES, certificate_hint
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.transports.amqp.socket import Connection
from celeriac.transports.options import option

logger = logging.getLogger("celeriac.transports.amqp")

_T = TypeVar("_T")

DEFAULT_PORT = 5672
DEFAULT_SSL_PORT = 5671
#: Errors that mean the connection (not just one channel) is gone: reconnect and retry.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    OSError,
)
#: kombu's reconnect backoff (``ensure_connection``): 2 s, 4 s, ... at most 30 s apart.
RECONNECT_INTERVALS = {"interval_start": 2.0, "interval_step": 2.0, "interval_max": 30.0}


@dataclass(frozen=True, slots=True)
class AMQPParams:
    """Everything needed to open one connection, and how to behave once connected."""

    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    virtual_host: str
    ssl: Any
    heartbeat: float
    connect_timeout: float | None
    login_method: str | None
    confirm_publish: bool
    confirm_timeout: float
    publish_retry: bool
    publish_policy: RetryPolicy
    reconnect_policy: RetryPolicy
    queue_max_priority: int | None
    display: str  # the URL with its password masked, for every log line and error

    @property
    def task_publish_policy(self) -> RetryPolicy:
        """``task_publish_retry_policy``, or no retry with ``task_publish_retry=False``."""
        return self.publish_policy if self.publish_retry else RetryPolicy(max_retries=0)

    def connection(self) -> amqp.Connection:
        """A new, unconnected py-amqp connection."""
        return Connection(
            host=f"{self.host}:{self.port}",
            userid=self.userid,
            password=self.password,
            virtual_host=self.virtual_host,
            ssl=self.ssl,
            heartbeat=self.heartbeat,
            connect_timeout=self.connect_timeout,
            login_method=self.login_method,
        )


def parse_params(url: str, options: Mapping[str, Any]) -> AMQPParams:
    """Read ``url`` (the first of a ``;`` list) and the connection settings in ``options``.

    Raises:
        ImproperlyConfigured: the URL is not an AMQP URL.
    """
    first = url.split(";", 1)[0].strip()
    parts = urlsplit(first)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps", "pyamqp"):
        raise ImproperlyConfigured(f"Not an AMQP broker URL: {mask_url(first)!r}")
    use_ssl = option(options, "broker_use_ssl", "ssl", default=None)
    if scheme == "amqps" and not use_ssl:
        use_ssl = True
    try:
        port = parts.port or (DEFAULT_SSL_PORT if use_ssl else DEFAULT_PORT)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Bad port in broker URL {mask_url(first)!r}") from exc
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    # None is meaningful here: retry forever (Celery's broker_connection_max_retries=None).
    names = [n for n in ("broker_connection_max_retries", "max_retries") if n in options]
    max_retries = options[names[0]] if names else 100
    publish_policy = dict(option(options, "task_publish_retry_policy", default={}) or {})
    priority = option(options, "task_queue_max_priority", default=None)
    return AMQPParams(
        host=parts.hostname or "localhost",
        port=port,
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password else "guest",
        virtual_host=unquote(path) or "/",
        ssl=use_ssl or False,
        heartbeat=float(option(options, "broker_heartbeat", "heartbeat", default=120.0)),
        connect_timeout=_float_or_none(
            option(options, "broker_connection_timeout", "connect_timeout", default=4.0)
        ),
        login_method=option(options, "broker_login_method", "login_method"),
        # True: publish returns once the broker has the message (kombu's confirm_publish).
        confirm_publish=bool(options.get("confirm_publish", False)),
        confirm_timeout=float(options.get("confirm_timeout", 30.0)),
        publish_retry=bool(option(options, "task_publish_retry", default=True)),
        publish_policy=RetryPolicy.from_mapping(publish_policy),
        reconnect_policy=RetryPolicy(
            max_retries=None if max_retries is None else int(max_retries),
            **RECONNECT_INTERVALS,
        ),
        queue_max_priority=None if priority is None else int(priority),
        display=mask_url(first),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def connect(params: AMQPParams) -> amqp.Connection:
    """Open one connection (no retry); errors name the masked URL."""
    conn = params.connection()
    try:
        conn.connect()
    except Exception:
        _close_quietly(conn)
        raise
    return conn


def with_retries(
    action: Callable[[], _T],
    params: AMQPParams,
    policy: RetryPolicy,
    *,
    what: str,
    on_error: Callable[[], None],
    errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS,
    stop: threading.Event | None = None,
) -> _T:
    """Call ``action``; on a connection error run ``on_error`` (drop the connection), wait per
    ``policy`` and try again, logging each attempt with the masked URL (Celery's wording)."""

    def attempt() -> _T:
        try:
            return action()
        except errors:
            on_error()
            raise

    retried = False

    def log(exc: BaseException, attempt_no: int, wait: float) -> None:
        nonlocal retried
        retried = True
        limit = "∞" if policy.max_retries is None else str(policy.max_retries)
        logger.warning(
            "%s: cannot reach %s: %s. Trying again in %.2f seconds... (%d/%s)",
            what,
            params.display,
            _describe(exc),
            wait,
            attempt_no,
            limit,
        )

    try:
        result = retry_call(
            attempt,
            policy,
            errors,
            on_retry=log,
            stop=stop,
            # A long backoff (Celery's reaches 30 s) ends once the server's port answers again.
            ready=lambda: tcp_listening(params.host, params.port),
        )
    except errors as exc:
        raise OperationalError(f"{what}: cannot reach {params.display}: {_describe(exc)}") from exc
    if retried:
        logger.warning("%s: %s reachable again", what, params.display)
    return result


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    hint = certificate_hint(exc, "broker_use_ssl", PY_AMQP_NAMES)
    if hint:
        return text + hint
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def _close_quietly(conn: amqp.Connection) -> None:
    try:
        conn.collect()
    except Exception as exc:  # nothing useful to do with a failure while tearing down
        logger.debug("Ignoring error while dropping an AMQP connection: %r", exc)


def drop(conn: amqp.Connection | None, *, graceful: bool) -> None:
    """Close ``conn``: politely when it still works, else just release its socket."""
    if conn is None:
        return
    if graceful:
        try:
            conn.close()
            return
        except Exception as exc:  # a dead socket: fall through and just collect
            logger.debug("AMQP close failed, collecting: %r", exc)
    _close_quietly(conn)


__all__ = [
    "CONNECTION_ERRORS",
    "AMQPParams",
    "connect",
    "drop",
    "parse_params",
    "with_retries",
]
