"""Redis result backend (``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``).

Celery 5.7's keys and documents: ``celery-task-meta-<id>`` (a JSON document, ``result_expires``
TTL) published on a channel of the same name, and ``celery-taskset-meta-<group id>``. A store
is one server-side script (read the current state, skip if it is SUCCESS, ``SETEX``,
``PUBLISH``): the write guard costs no extra round trip. ``get()`` subscribes to the result's
channel only while someone waits, then reads once, so a result can never be missed and no
``delay()`` pays for pub/sub.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import redis

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.backends.capabilities import ChordParts
from celeriac.drivers.reconnect import RetryPolicy, retry_call
from celeriac.drivers.redis import client as redis_conn
from celeriac.drivers.redis.plain import PlainWire
from celeriac.drivers.redis.wire import Listener, Wire
from celeriac.drivers.tls import REDIS_PY_NAMES, certificate_hint
from celeriac.exceptions import OperationalError
from celeriac.utils import forksafe

if TYPE_CHECKING:
    from celeriac.app.config import Settings

_T = TypeVar("_T")

TASK_PREFIX = "celery-task-meta-"
GROUP_PREFIX = "celery-taskset-meta-"
#: Celery's documents start with the status field: a stored SUCCESS starts with this.
SUCCESS_HEAD = '{"status": "SUCCESS"'

#: KEYS: result key. ARGV: document, ttl seconds (0: none), guard prefix ('' = no guard).
_STORE = r"""
if ARGV[3] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current and string.sub(current, 1, string.len(ARGV[3])) == ARGV[3] then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""

#: KEYS: claim key. ARGV: task id, ttl ms. Returns the owner's task id.
_CLAIM = r"""
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
return redis.call('GET', KEYS[1])
"""


#: Celery 5.7's chord join (the same keys and arguments): KEYS .j .t .s .d <group> .c;
#: ARGV task id, entry, ordered, group index, expires, group expires, claim seconds, token.
#: Records a header task once (``.d``), counts, and claims the body's dispatch atomically.
_CHORD_PART = r"""
local jkey, tkey, skey, dkey, gkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local tid, value, ordered, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, group_expires = tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('GET', ckey) == 'done' then return {-1, 0, 0, 0} end
local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
  if ordered == '1' then redis.call('ZADD', jkey, score, value)
  else redis.call('RPUSH', jkey, value) end
  redis.call('SADD', dkey, member)
end
local count
if ordered == '1' then count = redis.call('ZCOUNT', jkey, '-inf', '+inf')
else count = redis.call('LLEN', jkey) end
if expires > 0 then
  for _, key in ipairs({jkey, tkey, skey, dkey}) do redis.call('EXPIRE', key, expires) end
  if group_expires > 0 then redis.call('EXPIRE', gkey, group_expires) end
end
local diff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and count == tonumber(size) + tonumber(diff or 0) then
  if redis.call('SET', ckey, ARGV[8], 'NX', 'EX', tonumber(ARGV[7])) then claimed = 1 end
end
return {count, diff, size, claimed}
"""

#: KEYS .c .s; ARGV token, seconds: extend our claim (or take an expired one back).
_CHORD_EXTEND = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if not redis.call('GET', KEYS[1]) and redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') and 1 or 0
end
return 0
"""

#: KEYS .c .j .t .s .d; ARGV token, seconds: drop the chord's keys, mark it done.
_CHORD_CLEANUP = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2]) end
  return 1
end
return 0
"""


def _keyprefix(options: dict[str, Any]) -> str:
    """Celery appends ``_`` to a ``global_keyprefix`` that does not end in a separator."""
    prefix = str(options.get("global_keyprefix") or "")
    if prefix and prefix[-1] not in ":_-.":
        prefix += "_"
    return prefix


class _Waiter(threading.local):
    """One thread's pub/sub connection and what it has heard."""

    pid: int = 0
    pubsub: Any = None
    channels: set[str]
    heard: set[str]

    def __init__(self) -> None:
        self.channels = set()
        self.heard = set()


class _Batch(threading.local):
    """One thread's write batch: None when closed; ``defer`` while the worker stores a result."""

    writes: list[tuple[str, bytes, int, str]] | None = None
    defer: bool = False


class RedisBackend(ResultBackend):
    """Task results in Redis, laid out exactly as Celery's Redis backend writes them."""

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "redis+socket", "socket", "sentinel")
    supports_result_compression: ClassVar[bool] = True
    #: ``ResultSet.join_native``: every pending member read in one round trip.
    supports_native_join: ClassVar[bool] = True

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        options = dict(conf.result_backend_transport_options or {})
        for setting, option in (
            ("redis_socket_timeout", "socket_timeout"),
            ("redis_socket_connect_timeout", "socket_connect_timeout"),
            ("redis_socket_keepalive", "socket_keepalive"),
            ("redis_retry_on_timeout", "retry_on_timeout"),
            ("redis_backend_health_check_interval", "health_check_interval"),
            ("redis_max_connections", "max_connections"),
        ):
            if conf.get(setting) is not None:
                options.setdefault(option, conf.get(setting))
        self.params = redis_conn.parse_url(url, options, use_ssl=conf.redis_backend_use_ssl)
        self.where = redis_conn.describe(self.params)
        self.prefix = _keyprefix(options)
        retry = options.get("retry_policy") or {"max_retries": 3, "interval_step": 0.5}
        self.retry_policy = RetryPolicy.from_mapping({"interval_max": 1.0, **retry})
        self._json = self.content_type == "application/json" and not self.compression
        self._waiter = _Waiter()
        self._batch = _Batch()
        self._lean = bool(conf.redis_lean_resp)
        self._wire = Wire() if self._lean else PlainWire()
        self._listener = Listener()
        self._listen_pid = 0
        self._listen_ok = False
        self._pid = 0
        self._client: redis.Redis | None = None
        self._store: Any = None
        self._claim: Any = None
        self._chord_scripts: tuple[Any, ...] = ()
        self._chord_ordered = bool(options.get("result_chord_ordered", True))

    # -- connection ------------------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        if self._client is None or self._pid != forksafe.pid():
            self._client = redis_conn.client(self.params)
            self._store = self._client.register_script(_STORE)
            self._claim = self._client.register_script(_CLAIM)
            self._chord_scripts = tuple(
                self._client.register_script(script)
                for script in (_CHORD_PART, _CHORD_EXTEND, _CHORD_CLEANUP)
            )
            self._pid = forksafe.pid()
        return self._client

    def _call(self, action: Callable[[], _T], what: str) -> _T:
        try:
            return retry_call(action, self.retry_policy, redis_conn.CONNECTION_ERRORS)
        except redis_conn.CONNECTION_ERRORS as exc:
            hint = certificate_hint(exc, "redis_backend_use_ssl", REDIS_PY_NAMES)
            raise OperationalError(
                f"Cannot reach the Redis result backend at {self.where} while {what}: {exc}{hint}"
            ) from exc

    def task_key(self, task_id: str) -> str:
        return f"{self.prefix}{TASK_PREFIX}{task_id}"

    def group_key(self, group_id: str) -> str:
        return f"{self.prefix}{GROUP_PREFIX}{group_id}"

    @property
    def ttl(self) -> int:
        return max(1, int(self.expires)) if self.expires else 0

    # -- primitives ------------------------------------------------------------------------
    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        found, data = self._listener.take(self.task_key(task_id))
        if found:  # read with the SUBSCRIBE, or heard on the channel, just now
            return None if data is None else self.load_document(data)
        command = [("GET", self.task_key(task_id))]
        data = self._call(lambda: self._wire.execute(self.client, command)[0], "reading a result")
        return None if data is None else self.load_document(data)

    def _get_metas(self, task_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Those read with the SUBSCRIBE (or heard) just now, the rest in one ``MGET``."""
        keys = [self.task_key(task_id) for task_id in task_ids]
        found: list[Any] = [self._listener.take(key) for key in keys]
        missing = [key for key, (got, _) in zip(keys, found, strict=True) if not got]
        if missing:
            command = [("MGET", *missing)]
            values = iter(
                self._call(lambda: self._wire.execute(self.client, command)[0], "reading results")
            )
            found = [(True, next(values)) if not got else (got, data) for got, data in found]
        return [None if data is None else self.load_document(data) for _, data in found]

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        """Guard, ``SETEX`` and ``PUBLISH`` in one script (non-JSON documents: guard here)."""
        key = self.task_key(task_id)
        document = self.encode_document(meta)
        guard = SUCCESS_HEAD if self._json else ""
        batch = self._batch
        if batch.defer and batch.writes is not None and self._json:
            batch.writes.append((key, document, self.ttl, guard))
            return
        if not self._json and self._stored_success(key):
            return
        write = (key, document, self.ttl, guard)
        self._call(lambda: self._send_writes([write]), "storing a result")

    # -- write batches (the worker: many results, one round trip) ---------------------------
    def open_write_batch(self) -> bool:
        """Start collecting this thread's deferred result writes; False if not supported.

        Only writes made inside :meth:`deferring` are held (the worker's final stores); they
        reach Redis at :meth:`flush_writes` in one pipeline, in order, each still the guarded
        ``SETEX`` + ``PUBLISH`` script.
        """
        if not self._json:
            return False
        if self._batch.writes is None:
            self._batch.writes = []
        return True

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        batch = self._batch
        batch.defer = True
        try:
            yield
        finally:
            batch.defer = False

    def pending_writes(self) -> int:
        return len(self._batch.writes or ())

    def flush_writes(self, close: bool = False) -> None:
        """Send the held writes (one pipeline; EVALSHA, loading the script once if needed)."""
        batch = self._batch
        writes = batch.writes or []
        batch.writes = None if close else []
        if writes:
            self._call(lambda: self._send_writes(writes), "storing results")

    def _send_writes(self, writes: list[tuple[str, bytes, int, str]]) -> None:
        client = self.client
        sha = self._store.sha
        commands = [("EVALSHA", sha, 1, *write) for write in writes]
        try:
            self._wire.execute(client, commands)
        except redis.exceptions.NoScriptError:
            # A restarted or flushed server; the guard makes the repeated writes harmless.
            client.script_load(_STORE)
            self._wire.execute(client, commands)

    def _stored_success(self, key: str) -> bool:
        data = self._call(lambda: self.client.get(key), "reading a result")
        if data is None:
            return False
        try:
            return self.load_document(data).get("status") == states.SUCCESS
        except Exception:  # an unreadable document is not a SUCCESS to protect
            return False

    def _delete_meta(self, task_id: str) -> None:
        self._call(lambda: self.client.delete(self.task_key(task_id)), "forgetting a result")

    def _get_group(self, group_id: str) -> Any | None:
        data = self._call(lambda: self.client.get(self.group_key(group_id)), "reading a group")
        if data is None:
            return None
        document = self.decode(data)
        return document.get("result") if isinstance(document, dict) else None

    def _set_group(self, group_id: str, value: Any) -> None:
        key, data = self.group_key(group_id), self.encode({"result": value})
        ttl = self.ttl
        self._call(
            lambda: self.client.set(key, data, ex=ttl or None),
            "saving a group",
        )

    def _delete_group(self, group_id: str) -> None:
        self._call(lambda: self.client.delete(self.group_key(group_id)), "deleting a group")

    def _cleanup(self, older_than: datetime) -> int:
        """Every key carries its ``result_expires`` TTL, so Redis already removed what is
        old *now*; only a cleanup for a later moment has work: keys whose remaining TTL
        says they were stored before ``older_than``."""
        now = time.time()
        if not self.expires or older_than.timestamp() <= now - self.expires + 1.0:
            return 0
        keep_after = older_than.timestamp() - (now - self.expires)  # minimum remaining TTL
        return self._call(lambda: self._delete_short_lived(keep_after), "removing results")

    def _delete_short_lived(self, min_ttl: float) -> int:
        client = self.client
        removed = 0
        for pattern in (TASK_PREFIX, GROUP_PREFIX):
            keys = list(client.scan_iter(match=f"{self.prefix}{pattern}*", count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
            doomed = [
                k for k, ms in zip(keys, pipe.execute(), strict=True) if 0 <= ms < min_ttl * 1000
            ]
            if doomed:
                removed += int(client.delete(*doomed))
        return removed

    def claim_unique(self, key: str, task_id: str, ttl: float) -> str:
        client = self.client
        owner = self._call(
            lambda: self._claim(
                keys=[self.prefix + key], args=[task_id, max(1, int(ttl * 1000))], client=client
            ),
            "claiming a unique key",
        )
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    # -- chords (JoinsChords) ----------------------------------------------------------------
    def _chord_keys(self, group_id: str) -> dict[str, str]:
        base = self.group_key(group_id)
        return {s: base + s for s in (".j", ".t", ".s", ".d", ".c")} | {"": base}

    def _claim_seconds(self) -> int:
        return max(5, int((self.conf.result_chord_join_timeout or 5.0) * 2))

    def set_chord_size(self, group_id: str, size: int) -> None:
        keys = self._chord_keys(group_id)
        client = self.client
        self._call(lambda: client.delete(keys[".c"]), "starting a chord")
        ttl = self.ttl or None
        self._call(lambda: client.set(keys[".s"], size, ex=ttl), "starting a chord")

    def chord_part_return(
        self, group_id: str, task_id: str, group_index: int | None, state: str, result: Any
    ) -> ChordParts | None:
        keys = self._chord_keys(group_id)
        client = self.client
        entry = self.encode([1, task_id, state, self.encode_result(result, state)])
        token = uuid.uuid4().hex
        part, extend, _ = self._chord_scripts
        count, diff, size, claimed = self._call(
            lambda: part(
                keys=[keys[".j"], keys[".t"], keys[".s"], keys[".d"], keys[""], keys[".c"]],
                args=[
                    task_id,
                    entry,
                    1 if self._chord_ordered else 0,
                    "+inf" if group_index is None else group_index,
                    self.ttl,
                    self.ttl,
                    self._claim_seconds(),
                    token,
                ],
                client=client,
            ),
            "counting a chord",
        )
        if count == -1 or not size or not claimed:
            return None
        total = int(size) + int(diff or 0)
        if self._chord_ordered:
            raw = self._call(lambda: client.zrange(keys[".j"], 0, -1), "joining a chord")
        else:
            raw = self._call(lambda: client.lrange(keys[".j"], 0, total), "joining a chord")
        results = []
        for item in raw:
            _, tid, st, value = self.decode(_text(item))
            if st in self.EXCEPTION_STATES:
                value = self.exception_to_python(value)
            results.append((str(tid), str(st), value))
        seconds = self._claim_seconds() * 2
        if not self._call(
            lambda: extend(keys=[keys[".c"], keys[".s"]], args=[token, seconds], client=client),
            "joining a chord",
        ):
            return None  # another worker took the chord over
        return ChordParts(group_id, results, token)

    def add_to_chord(self, group_id: str) -> None:
        key = self._chord_keys(group_id)[".t"]
        client = self.client
        self._call(lambda: client.incr(key), "adding to a chord")  # Celery's add_to_chord

    def chord_done(self, parts: ChordParts) -> None:
        keys = self._chord_keys(parts.group_id)
        client = self.client
        cleanup = self._chord_scripts[2]
        done_for = max(self._claim_seconds() * 2, 300)
        self._call(
            lambda: cleanup(
                keys=[keys[".c"], keys[".j"], keys[".t"], keys[".s"], keys[".d"]],
                args=[parts.token, done_for],
                client=client,
            ),
            "finishing a chord",
        )

    # -- waiting (pub/sub only while someone waits) -----------------------------------------
    def _pubsub(self) -> Any:
        waiter = self._waiter
        if waiter.pubsub is None or waiter.pid != forksafe.pid():
            waiter.pubsub = redis_conn.pubsub(self.client)
            waiter.pid = forksafe.pid()
            waiter.channels = set()
            waiter.heard = set()
        return waiter.pubsub

    def _listening(self) -> bool:
        """True when RESP3 lets one connection subscribe and read (see ``Listener``)."""
        if self._listen_pid != forksafe.pid():
            self._listen_pid = forksafe.pid()
            self._listen_ok = self._lean and self._listener.usable(self.client)
        return self._listen_ok

    def _before_read(self, task_ids: Sequence[str]) -> None:
        """Subscribe (and wait for the confirmation) before the read: nothing is missed."""
        if self._listening():
            keys = [self.task_key(task_id) for task_id in task_ids]
            with contextlib.suppress(*redis_conn.CONNECTION_ERRORS):
                self._listener.subscribe_and_read(self.client, keys)
            return  # after an error the read goes the usual way and the wait polls
        wanted = {self.task_key(task_id) for task_id in task_ids}
        waiter = self._waiter
        try:
            pubsub = self._pubsub()
            stale = waiter.channels - wanted
            if stale:
                pubsub.unsubscribe(*stale)  # confirmations are read (and dropped) later
                waiter.channels -= stale
            missing = wanted - waiter.channels
            if missing:
                pubsub.subscribe(*missing)
                waiter.channels |= missing
                self._confirm(pubsub, missing)
        except redis_conn.CONNECTION_ERRORS:
            self._reset_waiter()  # the read that follows retries; the wait polls

    def _confirm(self, pubsub: Any, channels: set[str]) -> None:
        pending = set(channels)
        deadline = time.monotonic() + 5.0
        while pending and time.monotonic() < deadline:
            reply = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if reply is None:
                continue
            channel = _text(reply.get("channel"))
            if reply["type"] == "subscribe":
                pending.discard(channel)
            elif reply["type"] == "message":
                self._waiter.heard.add(channel)

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        if self._listening():
            keys = [self.task_key(task_id) for task_id in task_ids]
            if not self._listener.subscribed(keys):
                time.sleep(min(timeout, 0.05))  # pub/sub is down: poll gently
                return
            with contextlib.suppress(*redis_conn.CONNECTION_ERRORS):
                self._listener.wait(keys, timeout)
            return
        waiter = self._waiter
        wanted = {self.task_key(task_id) for task_id in task_ids}
        if waiter.pubsub is None or not wanted <= waiter.channels:
            time.sleep(min(timeout, 0.05))  # pub/sub is down: poll gently
            return
        if waiter.heard & wanted:
            waiter.heard -= wanted
            return
        deadline = time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                reply = waiter.pubsub.get_message(timeout=remaining)
                heard = reply is not None and reply["type"] == "message"
                if heard and _text(reply.get("channel")) in wanted:
                    return
        except redis_conn.CONNECTION_ERRORS:
            self._reset_waiter()

    def _reset_waiter(self) -> None:
        waiter = self._waiter
        if waiter.pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                waiter.pubsub.close()
        waiter.pubsub = None
        waiter.channels = set()
        waiter.heard = set()

    def close(self) -> None:
        if self._waiter.pid == forksafe.pid():
            self._reset_waiter()
        self._listener.close()
        self._wire.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["RedisBackend"]
