"""One declarative table of every setting, with Celery's names and legacy uppercase aliases.

``Settings`` is the mapping behind ``app.conf``: attribute and item access, ``update()``,
old names translated to new ones, and a warning naming the nearest known setting when a
name is not known (a typo in configuration must not pass silently).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any


class UnknownSettingWarning(UserWarning):
    """A configuration key is not a known setting."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table: name, default, legacy alias and a short description."""

    name: str
    default: Any
    old: str | None = None
    doc: str = ""
    convert: Callable[[Any], Any] | None = None


def _seconds_or_none(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


_S = Setting
_EV_QUEUE = "Accepted; the receiver's queue is exclusive and auto-deleted (AMQP), so unused."
SETTINGS: tuple[Setting, ...] = (
    # broker
    _S("broker_url", None, "BROKER_URL", "Broker URL; none means the embedded SQLite broker."),
    _S("broker_transport_options", {}, "BROKER_TRANSPORT_OPTIONS", "Options for the transport."),
    _S("broker_connection_timeout", 4.0, "BROKER_CONNECTION_TIMEOUT", "Connect timeout (s)."),
    _S("broker_connection_retry_on_startup", True, None, "Retry connecting at worker start."),
    _S("broker_connection_max_retries", 100, "BROKER_CONNECTION_MAX_RETRIES", "Reconnect limit."),
    _S("broker_heartbeat", 120.0, "BROKER_HEARTBEAT", "AMQP heartbeat (s)."),
    _S(
        "broker_pool_limit",
        10,
        "BROKER_POOL_LIMIT",
        "Most broker connections a process sends on (threads share them, waiting when all "
        "are busy); 0 or None: a new connection for every send.",
    ),
    _S("broker_use_ssl", None, "BROKER_USE_SSL", "TLS options for the broker."),
    _S("broker_login_method", None, "BROKER_LOGIN_METHOD", "AMQP login method."),
    # results
    _S("result_backend", None, "CELERY_RESULT_BACKEND", "Result backend URL."),
    _S("result_serializer", "json", "CELERY_RESULT_SERIALIZER", "Serializer for results."),
    _S(
        "result_accept_content",
        None,
        "CELERY_RESULT_ACCEPT_CONTENT",
        "Content types accepted for results (default: accept_content).",
        _str_list,
    ),
    _S("result_compression", None, "CELERY_RESULT_COMPRESSION", "Compress stored results."),
    _S(
        "result_expires",
        86400.0,
        "CELERY_TASK_RESULT_EXPIRES",
        "Seconds results are kept (None or 0: forever).",
        _seconds_or_none,
    ),
    _S("result_extended", False, "CELERY_RESULT_EXTENDED", "Store name, args, kwargs, worker."),
    _S("result_persistent", None, "CELERY_RESULT_PERSISTENT", "Persistent rpc result messages."),
    _S("result_backend_transport_options", {}, None, "Options for the result backend."),
    _S(
        "result_chord_join_timeout",
        3.0,
        None,
        "The worker completing a chord holds the body for max(5, 2x this) s (then another may).",
    ),
    _S("redis_backend_use_ssl", None, "CELERY_REDIS_BACKEND_USE_SSL", "TLS for Redis results."),
    _S("redis_max_connections", None, "CELERY_REDIS_MAX_CONNECTIONS", "Redis results pool size."),
    _S("redis_socket_timeout", 120.0, None, "Redis result backend socket timeout (s)."),
    _S("redis_socket_connect_timeout", None, None, "Redis result backend connect timeout (s)."),
    _S("redis_socket_keepalive", False, None, "TCP keepalive on Redis result connections."),
    _S("redis_retry_on_timeout", False, None, "Retry Redis result reads after a timeout."),
    _S("redis_backend_health_check_interval", None, None, "Redis results health check (s)."),
    _S(
        "redis_lean_resp",
        True,
        None,
        "Hot Redis commands of the broker and the result backend over celeriac's own RESP "
        "reader; False: over plain redis-py (the same commands, at redis-py's cost).",
    ),
    _S("database_table_names", {}, None, "Override the result table names."),
    _S("database_table_schemas", {}, None, "Schemas of the result tables."),
    _S("database_engine_options", {}, "CELERY_RESULT_ENGINE_OPTIONS", "SQLAlchemy options."),
    _S("database_short_lived_sessions", False, None, "New DB session per operation."),
    _S("database_create_tables_at_setup", True, None, "Create result tables at setup."),
    # tasks
    _S("task_serializer", "json", "CELERY_TASK_SERIALIZER", "Serializer for task messages."),
    _S("task_compression", None, "CELERY_MESSAGE_COMPRESSION", "Compress task messages."),
    _S("task_protocol", 2, "CELERY_TASK_PROTOCOL", "Task message protocol (2, or 1 to decode)."),
    _S(
        "accept_content",
        ["json"],
        "CELERY_ACCEPT_CONTENT",
        "Serializers (or content types) a worker accepts.",
        _str_list,
    ),
    _S("task_default_queue", "celery", "CELERY_DEFAULT_QUEUE", "Queue of unrouted tasks."),
    _S(
        "task_default_exchange",
        None,
        "CELERY_DEFAULT_EXCHANGE",
        "Exchange of the default queue (default: the queue name).",
    ),
    _S("task_default_exchange_type", "direct", "CELERY_DEFAULT_EXCHANGE_TYPE", "Its type."),
    _S(
        "task_default_routing_key",
        None,
        "CELERY_DEFAULT_ROUTING_KEY",
        "Routing key of the default queue (default: the queue name).",
    ),
    _S("task_default_delivery_mode", 2, "CELERY_DEFAULT_DELIVERY_MODE", "2 persistent, 1 not."),
    _S("task_default_priority", None, "CELERY_DEFAULT_PRIORITY", "Priority when none is given."),
    _S("task_queue_max_priority", None, None, "x-max-priority of declared queues."),
    _S("task_queues", None, "CELERY_QUEUES", "Declared queues (list of Queue)."),
    _S("task_routes", None, "CELERY_ROUTES", "Routing table."),
    _S("task_create_missing_queues", True, "CELERY_CREATE_MISSING_QUEUES", "Auto-create queues."),
    _S("task_ignore_result", False, "CELERY_IGNORE_RESULT", "Do not store results by default."),
    _S(
        "task_store_errors_even_if_ignored",
        False,
        "CELERY_STORE_ERRORS_EVEN_IF_IGNORED",
        "Store failures of tasks that ignore results.",
    ),
    _S("task_always_eager", False, "CELERY_ALWAYS_EAGER", "Run tasks in-process at send."),
    _S(
        "task_eager_propagates",
        False,
        "CELERY_EAGER_PROPAGATES_EXCEPTIONS",
        "Eager tasks re-raise their exception.",
    ),
    _S("task_store_eager_result", False, None, "Eager tasks store their result."),
    _S("task_acks_late", False, "CELERY_ACKS_LATE", "Ack after the task finished."),
    _S("task_acks_on_failure_or_timeout", True, None, "Ack failed tasks when acks_late."),
    _S(
        "task_reject_on_worker_lost",
        False,
        "CELERY_REJECT_ON_WORKER_LOST",
        "Requeue acks_late tasks whose process died.",
    ),
    _S("task_track_started", False, "CELERY_TRACK_STARTED", "Store the STARTED state."),
    _S("task_time_limit", None, "CELERYD_TASK_TIME_LIMIT", "Hard time limit (s)."),
    _S("task_soft_time_limit", None, "CELERYD_TASK_SOFT_TIME_LIMIT", "Soft time limit (s)."),
    _S("task_default_rate_limit", None, "CELERY_DEFAULT_RATE_LIMIT", "Rate limit of all tasks."),
    _S("task_annotations", None, "CELERY_ANNOTATIONS", "Per-task option overrides."),
    _S("task_publish_retry", True, "CELERY_TASK_PUBLISH_RETRY", "Retry failed publishes."),
    _S(
        "task_publish_retry_policy",
        {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        "CELERY_TASK_PUBLISH_RETRY_POLICY",
        "Publish retry policy.",
    ),
    _S(
        "task_send_sent_event",
        False,
        "CELERY_SEND_TASK_SENT_EVENT",
        "Send a task-sent event for every task published by this client.",
    ),
    _S(
        "task_inherit_parent_priority",
        False,
        None,
        "Children inherit the parent's priority. Not read yet: no effect.",
    ),
    _S(
        "task_remote_tracebacks",
        False,
        None,
        "Show remote tracebacks in re-raised errors. Not read yet: no effect.",
    ),
    _S(
        "task_dead_letter_queue",
        None,
        None,
        "Beyond Celery: queue for final failures, e.g. '{queue}.dead' (None: off).",
    ),
    # app
    _S("imports", [], "CELERY_IMPORTS", "Modules imported by the worker.", _str_list),
    _S("include", [], "CELERY_INCLUDE", "Modules imported by the worker.", _str_list),
    _S("timezone", None, "CELERY_TIMEZONE", "Time zone for ETA and schedules (UTC if unset)."),
    _S(
        "enable_utc",
        True,
        "CELERY_ENABLE_UTC",
        "With no timezone set: UTC (True) or the system's local zone (False) for schedules "
        "and app.now(). Dates in messages are UTC either way.",
    ),
    # worker
    _S("worker_concurrency", None, "CELERYD_CONCURRENCY", "Pool size (default: CPU count)."),
    _S(
        "worker_prefetch_multiplier",
        4,
        "CELERYD_PREFETCH_MULTIPLIER",
        "Messages reserved per pool slot.",
    ),
    _S("worker_pool", "prefork", "CELERYD_POOL", "Pool: prefork, threads, solo."),
    _S(
        "worker_max_tasks_per_child",
        None,
        "CELERYD_MAX_TASKS_PER_CHILD",
        "Replace a pool process after this many tasks.",
    ),
    _S(
        "worker_max_memory_per_child",
        None,
        "CELERYD_MAX_MEMORY_PER_CHILD",
        "Replace a pool process above this resident memory (KiB).",
    ),
    _S(
        "worker_soft_shutdown_timeout",
        0.0,
        None,
        "Seconds a shutdown lets running tasks finish before they are cut short and their "
        "messages go back to the broker (0: SIGTERM waits for them; SIGQUIT does not).",
    ),
    _S(
        "worker_enable_soft_shutdown_on_idle",
        False,
        None,
        "Wait worker_soft_shutdown_timeout even when no task is running.",
    ),
    _S(
        "worker_liveness_file",
        None,
        None,
        "Beyond Celery: the file the worker rewrites every second while it consumes and "
        "removes when it stops, read by `celeriac check` (%n, %h expanded; worker "
        "--liveness-file sets it). None: no liveness file.",
    ),
    _S(
        "worker_direct_consume",
        True,
        None,
        "Beyond Celery: prefork children consume from Redis/RabbitMQ (False: the parent does).",
    ),
    _S(
        "worker_send_task_events",
        False,
        "CELERY_SEND_EVENTS",
        "Send task events (worker -E): task-received, -started, -succeeded, -failed, ...",
    ),
    _S("worker_hijack_root_logger", True, "CELERYD_HIJACK_ROOT_LOGGER", "Configure logging."),
    _S(
        "worker_log_format",
        "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        "CELERYD_LOG_FORMAT",
        "Worker log format.",
    ),
    _S(
        "worker_task_log_format",
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s",
        "CELERYD_TASK_LOG_FORMAT",
        "Log format inside tasks.",
    ),
    _S(
        "worker_redirect_stdouts",
        True,
        "CELERY_REDIRECT_STDOUTS",
        "Log task print() output. Not read yet: print() goes to the worker's stdout.",
    ),
    _S(
        "worker_redirect_stdouts_level",
        "WARNING",
        "CELERY_REDIRECT_STDOUTS_LEVEL",
        "Its level. Not read yet.",
    ),
    _S(
        "worker_lost_wait",
        10.0,
        "CELERYD_WORKER_LOST_WAIT",
        "Wait for a lost result (s). Not read yet: no effect.",
    ),
    _S("worker_disable_rate_limits", False, "CELERY_DISABLE_RATE_LIMITS", "Ignore rate limits."),
    _S("worker_state_db", None, "CELERYD_STATE_DB", "File keeping revoked ids."),
    _S(
        "worker_cancel_long_running_tasks_on_connection_loss",
        False,
        None,
        "Cancel acks_late tasks when the connection is lost. Not read yet: no effect.",
    ),
    _S(
        "worker_deduplicate_successful_tasks",
        False,
        None,
        "Skip redelivered done tasks. Not read yet: no effect.",
    ),
    _S(
        "worker_eta_defer_after",
        60.0,
        None,
        "ETA tasks due later than this (s) are parked in the broker, not held by the worker "
        "(brokers that support it; None: hold them all, as Celery does).",
    ),
    _S(
        "worker_cluster_store",
        None,
        None,
        "URL of the store shared by workers for cluster-wide rate limits and revocations "
        "(redis://, sqlite:///, memory://; unset: the broker's own server or file).",
    ),
    _S(
        "task_rate_limit_scope",
        "worker",
        None,
        "Default scope of rate limits: 'worker' (Celery's) or 'cluster' (shared by all workers).",
    ),
    _S(
        "worker_revoke_ttl",
        10800.0,
        None,
        "Seconds a revoked id is kept in the cluster store for workers offline at revoke time "
        "(0 or None: broadcast only, as Celery).",
        _seconds_or_none,
    ),
    # events and control
    _S("worker_enable_remote_control", True, "CELERY_ENABLE_REMOTE_CONTROL", "Remote control."),
    _S(
        "event_serializer",
        "json",
        "CELERY_EVENT_SERIALIZER",
        "Serializer of the events a worker or client sends.",
    ),
    _S(
        "event_queue_ttl",
        5.0,
        "CELERY_EVENT_QUEUE_TTL",
        f"Event queue message TTL (s). {_EV_QUEUE}",
    ),
    _S(
        "event_queue_expires",
        60.0,
        "CELERY_EVENT_QUEUE_EXPIRES",
        f"Event queue expiry (s). {_EV_QUEUE}",
    ),
    _S("event_queue_prefix", "celeryev", None, "Prefix of event queue names."),
    _S(
        "event_exchange",
        "celeryev",
        None,
        "The events exchange (topic on RabbitMQ, PUB/SUB channels on Redis).",
    ),
    _S(
        "control_exchange",
        "celery",
        "CELERY_CONTROL_EXCHANGE",
        "Remote control namespace. Not read yet: celeriac always uses 'celery' (celery.pidbox).",
    ),
    _S("control_queue_ttl", 300.0, None, "Control queue message TTL (s). Not read yet."),
    _S("control_queue_expires", 10.0, None, "Control queue expiry (s). Not read yet."),
    # beat
    _S(
        "beat_schedule",
        {},
        "CELERYBEAT_SCHEDULE",
        "Periodic tasks: name -> {task, schedule, args, kwargs, options, relative}.",
    ),
    _S(
        "beat_scheduler",
        None,
        "CELERYBEAT_SCHEDULER",
        "Scheduler class. Not read: celeriac beat has one scheduler.",
    ),
    _S(
        "beat_schedule_filename",
        "celerybeat-schedule",
        "CELERYBEAT_SCHEDULE_FILENAME",
        "Beat's state file (last run, run count); `beat -s` sets it.",
    ),
    _S(
        "beat_max_loop_interval",
        300.0,
        "CELERYBEAT_MAX_LOOP_INTERVAL",
        "Longest beat sleeps between checks (s); `beat --max-interval` sets it.",
        _seconds_or_none,
    ),
    _S(
        "beat_sync_every",
        0,
        "CELERYBEAT_SYNC_EVERY",
        "Not read: celeriac beat writes its state file after every send.",
    ),
    _S(
        "beat_schedule_store",
        None,
        None,
        "Beyond Celery: keep the schedule in a store editable at run time (`celeriac "
        "schedule`): True (on the broker), or a sqlite:///, redis:// or postgresql:// URL.",
    ),
    _S(
        "beat_lease",
        True,
        None,
        "Beyond Celery: beat sends only while it holds a lease in the broker; a second beat "
        "waits as a standby (no lease on RabbitMQ).",
    ),
    _S(
        "beat_lease_ttl",
        5.0,
        None,
        "Beyond Celery: the lease's time to live (s); a standby takes over this long after "
        "the holder dies.",
        _seconds_or_none,
    ),
    _S(
        "beat_cron_starting_deadline",
        None,
        None,
        "A crontab run missed by more than this (s) is skipped, not run late (None: run).",
    ),
    # celeriac's embedded SQLite default
    _S(
        "sqlite_broker_path",
        "celeriac-broker.sqlite",
        None,
        "File of the embedded SQLite broker (used when broker_url is unset).",
    ),
    # message signing (app.setup_security())
    _S("security_key", None, "CELERY_SECURITY_KEY", "PEM file of the private key that signs."),
    _S(
        "security_key_password",
        None,
        "CELERY_SECURITY_KEY_PASSWORD",
        "Password of security_key (bytes or str).",
    ),
    _S(
        "security_certificate",
        None,
        "CELERY_SECURITY_CERTIFICATE",
        "PEM file of the certificate of security_key.",
    ),
    _S(
        "security_cert_store",
        None,
        "CELERY_SECURITY_CERT_STORE",
        "Directory or glob of the certificates whose signatures are trusted.",
    ),
    _S("security_digest", "sha256", "CELERY_SECURITY_DIGEST", "Digest of message signatures."),
    _S(
        "sqlite_result_path",
        "celeriac-results.sqlite",
        None,
        "File of the embedded SQLite result store (used when neither URL is set).",
    ),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: Settings a transport reads; ``app.connection()`` passes them in the transport options
#: under these names, with ``broker_transport_options`` laid over them.
BROKER_OPTION_SETTINGS: tuple[str, ...] = (
    "broker_use_ssl",
    "broker_heartbeat",
    "broker_connection_timeout",
    "broker_connection_retry_on_startup",
    "broker_connection_max_retries",
    "broker_login_method",
    "broker_pool_limit",
    "task_publish_retry",
    "task_publish_retry_policy",
    "task_queue_max_priority",
    "redis_lean_resp",
)
OLD_NAMES: dict[str, str] = {s.old: s.name for s in SETTINGS if s.old}


def nearest_setting(key: str) -> str | None:
    """The known setting name closest to ``key`` (for "did you mean ...?" messages)."""
    candidates = list(SETTINGS_BY_NAME) + list(OLD_NAMES)
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(key.lower(), candidates, n=1, cutoff=0.6)
    if not match:
        return None
    return OLD_NAMES.get(match[0], match[0])


def canonical_name(key: str) -> str:
    """Map a legacy uppercase name to its new name; other keys are returned unchanged."""
    return OLD_NAMES.get(key, key)


class Settings(MutableMapping[str, Any]):
    """The configuration mapping behind ``app.conf``.

    Reads fall back to the table's defaults; writes accept new and old names. A key that
    is neither a known setting nor an all-uppercase constant of the user's own (Celery
    users keep those in their config modules) gets an ``UnknownSettingWarning`` naming
    the nearest known setting.
    """

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {}
        self._revision = 0
        if initial:
            self.update(initial)

    @property
    def revision(self) -> int:
        """Changes with every write: what a cache of values derived from settings keys on."""
        return self._revision

    # Mapping protocol --------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        # Read on every send and every task: the common case (a set value) is one lookup.
        values = self._values
        if key in values:
            return values[key]
        name = OLD_NAMES.get(key, key)
        if name in values:
            return values[name]
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise KeyError(key)
        default = setting.default
        # Mutable defaults are copied so that a caller's mutation never changes the table.
        if isinstance(default, (dict, list)):
            default = type(default)(default)
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        name = canonical_name(key)
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            self._warn_unknown(key)
        elif setting.convert is not None:
            value = setting.convert(value)
        self._values[name] = value
        self._revision += 1

    def __delitem__(self, key: str) -> None:
        del self._values[canonical_name(key)]
        self._revision += 1

    def __iter__(self) -> Iterator[str]:
        seen = dict.fromkeys(SETTINGS_BY_NAME)
        seen.update(dict.fromkeys(self._values))
        return iter(seen)

    def __len__(self) -> int:
        return len(set(SETTINGS_BY_NAME) | set(self._values))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        name = canonical_name(key)
        return name in self._values or name in SETTINGS_BY_NAME

    # attribute access --------------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        if key[:1] == "_":
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            hint = nearest_setting(key)
            extra = f"; did you mean {hint!r}?" if hint else ""
            raise AttributeError(f"no setting named {key!r}{extra}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self[key] = value

    # helpers -----------------------------------------------------------------------------
    def broker_options(self, **overrides: Any) -> dict[str, Any]:
        """The options a broker transport is made with: the ``broker_*`` settings it reads,
        then ``broker_transport_options``, then ``overrides``."""
        options = {name: self[name] for name in BROKER_OPTION_SETTINGS}
        options.update(self.broker_transport_options or {})
        options.update(overrides)
        return options

    def changes(self) -> dict[str, Any]:
        """Settings explicitly set (not defaults)."""
        return dict(self._values)

    def is_set(self, key: str) -> bool:
        return canonical_name(key) in self._values

    def setdefault_value(self, key: str, value: Any) -> None:
        if not self.is_set(key):
            self[key] = value

    def update_from_items(self, items: Iterable[tuple[str, Any]]) -> None:
        for key, value in items:
            self[key] = value

    def humanize(self, with_defaults: bool = False) -> str:
        """``key: value`` lines, for ``celeriac inspect conf`` style output."""
        source = dict(self.items()) if with_defaults else self.changes()
        return "\n".join(f"{k}: {v!r}" for k, v in sorted(source.items()))

    def _warn_unknown(self, key: str) -> None:
        if key.isupper():
            return
        hint = nearest_setting(key)
        extra = f" Did you mean {hint!r}?" if hint else ""
        warnings.warn(
            f"Unknown setting {key!r} (celeriac ignores it).{extra}",
            UnknownSettingWarning,
            stacklevel=4,
        )


__all__ = [
    "BROKER_OPTION_SETTINGS",
    "OLD_NAMES",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "Setting",
    "Settings",
    "UnknownSettingWarning",
    "canonical_name",
    "nearest_setting",
]
