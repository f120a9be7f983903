"""The ResultBackend seam: a few storage primitives per backend, Celery's behaviour once here.

Subclasses store and fetch *prepared* metas (the result document with an exception still in
its dict form, or the exception object under pickle). Everything a user sees is built here:
Celery's document layout and field order, the SUCCESS write guard contract, exception
(de)serialization, ``result_extended`` fields, waiting, groups and cleanup.

This base states everything every store does. What only some stores do (write batching,
unique claims) is a Protocol in :mod:`celeriac.backends.capabilities`, checked with
``isinstance``.
"""

from __future__ import annotations

import pickle
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac import states
from celeriac.backends import exceptions_codec as codec
from celeriac.backends.helpers import (
    COMPRESSED_PAYLOAD_MAGIC,
    decompress_payload,
    field,
    parse_date_done,
    utcnow,
)
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured, TaskRevokedError, TimeoutError
from celeriac.protocol import compression
from celeriac.protocol.serialization import dumps, loads
from celeriac.result import GroupResult, result_from_tuple

if TYPE_CHECKING:
    from celeriac.app.config import Settings
    from celeriac.result import GroupResult

PICKLE_SERIALIZERS = frozenset({"pickle", "application/x-python-serialize"})
EXTENDED_FIELDS = ("name", "args", "kwargs", "worker", "retries", "queue")


class ResultBackend(ABC):
    """Stores task states and results; subclasses write the ``_``-prefixed primitives."""

    schemes: ClassVar[tuple[str, ...]] = ()
    persistent: ClassVar[bool] = True
    supports_native_join: ClassVar[bool] = False
    #: Whether stored payloads may be compressed (``result_compression``), as in Celery.
    supports_result_compression: ClassVar[bool] = False
    READY_STATES: ClassVar[frozenset[str]] = states.READY_STATES
    EXCEPTION_STATES: ClassVar[frozenset[str]] = states.EXCEPTION_STATES

    def __init__(self, url: str, conf: Settings) -> None:
        self.url = url
        self.conf = conf
        #: The app that made this backend (``app.make_backend`` sets it); None when built
        #: directly, in which case backends that need one use the current app.
        self.app: Any = None
        self.serializer: str = conf.result_serializer or "json"
        accept = conf.result_accept_content
        if accept is None:
            accept = conf.accept_content
        self.accept: list[str] = list(accept)
        self.expires: float | None = conf.result_expires or None
        self.extended: bool = bool(conf.result_extended)
        try:
            _, self.content_type, self.content_encoding = dumps(None, self.serializer)
        except Exception as exc:
            raise ImproperlyConfigured(
                f"Unknown result_serializer {self.serializer!r}: {exc}"
            ) from exc
        self.compression = self._prepare_compression(conf.result_compression)

    def _prepare_compression(self, name: str | None) -> str | None:
        if not name:
            return None
        if not self.supports_result_compression:
            warnings.warn(
                f"The {type(self).__name__} result backend cannot store compressed payloads, "
                "so result_compression is ignored and results are stored uncompressed.",
                UserWarning,
                stacklevel=3,
            )
            return None
        compression.compress(b"", name)  # ImproperlyConfigured for an unknown method
        return name

    # -- primitives ----------------------------------------------------------------------
    @abstractmethod
    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        """The stored prepared meta of ``task_id``, or None when nothing is stored."""

    @abstractmethod
    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        """Store ``meta``; must leave a stored SUCCESS untouched (the write guard)."""

    @abstractmethod
    def _delete_meta(self, task_id: str) -> None: ...

    @abstractmethod
    def _get_group(self, group_id: str) -> Any | None:
        """The stored group tuple ``((gid, parent), [child tuples])``, or None."""

    @abstractmethod
    def _set_group(self, group_id: str, value: Any) -> None: ...

    @abstractmethod
    def _delete_group(self, group_id: str) -> None: ...

    @abstractmethod
    def _cleanup(self, older_than: datetime) -> int:
        """Delete results and groups finished before ``older_than``; return how many."""

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        """Block until one of ``task_ids`` may have changed, at most ``timeout`` seconds.

        Polling backends keep this default; backends that can be told about a change
        (a condition, pub/sub) return as soon as it happens.
        """
        time.sleep(timeout)

    def _get_metas(self, task_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored prepared metas of ``task_ids``, in order (None: nothing stored); one
        ``_get_meta`` each unless the store reads many at once (Redis: one ``MGET``)."""
        return [self._get_meta(task_id) for task_id in task_ids]

    def _before_read(self, task_ids: Sequence[str]) -> None:
        """Called by ``wait_for`` before each read, so ``_wait`` can not miss a change."""
        return None

    def _heard_since_send(self, task_id: str) -> bool:
        """True when this process has been told of every store of ``task_id`` since it sent
        it (and ``_wait`` is set to return at the first): ``wait_for`` then waits before
        its first read instead of reading a result that cannot be there."""
        return False

    def close(self) -> None:
        """Release connections; the backend reconnects lazily if used again."""
        return None

    # -- encoding ------------------------------------------------------------------------
    @property
    def is_pickle(self) -> bool:
        return self.serializer in PICKLE_SERIALIZERS

    def encode(self, value: Any) -> bytes:
        data = dumps(value, self.serializer)[0]
        if self.compression:
            # Celery's self-describing form: magic, compression content type, NUL, body.
            body, content_type = compression.compress(data, self.compression)
            data = b"".join((COMPRESSED_PAYLOAD_MAGIC, content_type.encode(), b"\x00", body))
        return data

    def decode(
        self,
        data: bytes | str,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> Any:
        """Decode with the configured serializer, or the content type a message named."""
        if content_type is None:
            content_type, content_encoding = self.content_type, self.content_encoding
        data = decompress_payload(data)
        return loads(data, content_type, content_encoding or "utf-8", accept=self.accept)

    def decode_stored(self, data: bytes | str) -> Any:
        """Decode a SQL column; legacy (Celery <= 5.6) pickled values need pickle accepted."""
        try:
            return self.decode(data)
        except Exception:
            raw = data.encode() if isinstance(data, str) else data
            if raw[:1] != b"\x80" or not self._pickle_accepted():
                raise
            return pickle.loads(raw)

    def _pickle_accepted(self) -> bool:
        return any(name in PICKLE_SERIALIZERS for name in self.accept)

    def _encodable(self, value: Any) -> bool:
        try:
            dumps(value, self.serializer)
        except Exception:
            return False
        return True

    def prepare_exception(self, exc: BaseException) -> dict[str, Any] | BaseException:
        """The stored form of ``exc``: the object under pickle, Celery's dict otherwise."""
        if self.is_pickle:
            return codec.pickleable_exception(exc, self._encodable)
        return codec.exception_to_dict(exc, self._encodable)

    def exception_to_python(self, value: Any) -> BaseException | None:
        return codec.exception_to_python(value)

    def prepare_value(self, result: Any) -> Any:
        """Result objects travel as their tuples (except under pickle, as in Celery)."""
        if not self.is_pickle and hasattr(result, "as_tuple") and hasattr(result, "id"):
            return result.as_tuple()
        return result

    def encode_result(self, result: Any, state: str) -> Any:
        if state in self.EXCEPTION_STATES and isinstance(result, BaseException):
            return self.prepare_exception(result)
        return self.prepare_value(result)

    def encode_document(self, meta: dict[str, Any]) -> bytes:
        """The key-value document (Redis, memory): date_done as ISO text with offset."""
        document = dict(meta)
        date_done = document.get("date_done")
        if isinstance(date_done, datetime):
            document["date_done"] = date_done.isoformat()
        return self.encode(document)

    def load_document(
        self,
        data: bytes | str,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> dict[str, Any]:
        """A stored document in prepared form (exception still a dict)."""
        meta = self.decode(data, content_type, content_encoding)
        if not isinstance(meta, dict):
            raise TypeError(f"A result document must be a mapping, got {type(meta).__name__}")
        return meta

    def decode_document(
        self,
        data: bytes | str,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> dict[str, Any]:
        """Decode a Celery result document (Redis value, rpc body) to a user-facing meta."""
        return self.meta_from_prepared(self.load_document(data, content_type, content_encoding))

    def meta_from_prepared(self, prepared: dict[str, Any]) -> dict[str, Any]:
        meta = dict(prepared)
        meta.setdefault("traceback", None)
        meta.setdefault("children", [])
        if meta.get("status") in self.EXCEPTION_STATES:
            meta["result"] = self.exception_to_python(meta.get("result"))
        meta["date_done"] = parse_date_done(meta.get("date_done"))
        return meta

    # -- writing -------------------------------------------------------------------------
    def build_meta(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
    ) -> dict[str, Any]:
        """Celery's document, field order included; ``result`` already prepared."""
        meta: dict[str, Any] = {
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": self._children(request),
            "date_done": utcnow() if state in self.READY_STATES else None,
        }
        if request is not None:
            group_id = field(request, "group", "group_id")
            if group_id:
                meta["group_id"] = group_id
            parent_id = field(request, "parent_id")
            if parent_id:
                meta["parent_id"] = parent_id
            if self.extended:
                meta.update(self._extended(request))
        meta["task_id"] = task_id
        return meta

    def _children(self, request: Any) -> list[Any]:
        children = field(request, "children") if request is not None else None
        return [self.prepare_value(child) for child in children or ()]

    def _extended(self, request: Any) -> dict[str, Any]:
        name = field(request, "task", "name")
        delivery_info = field(request, "delivery_info") or {}
        args, kwargs = field(request, "args"), field(request, "kwargs")
        return {
            "name": name if isinstance(name, str) else getattr(name, "name", None),
            # Real values, as Celery stores them; tuples and read-only mappings are normalised
            # so every serializer can write them.
            "args": list(args) if args is not None else None,
            "kwargs": dict(kwargs) if kwargs is not None else None,
            "worker": field(request, "hostname", "worker"),
            "retries": field(request, "retries"),
            "queue": delivery_info.get("routing_key") or field(request, "queue"),
        }

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        """Store ``state`` and ``result``; a stored SUCCESS is never overwritten."""
        prepared = self.encode_result(result, state)
        self._set_meta(
            task_id, self.build_meta(task_id, prepared, state, traceback, request), state
        )

    def mark_as_started(self, task_id: str, **meta: Any) -> None:
        self.store_result(task_id, meta, states.STARTED)

    def mark_as_done(self, task_id: str, result: Any, request: Any = None) -> None:
        self.store_result(task_id, result, states.SUCCESS, request=request)

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException | None,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        self.store_result(task_id, exc, states.FAILURE, traceback=traceback, request=request)

    def mark_as_retry(
        self,
        task_id: str,
        exc: BaseException | None,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        self.store_result(task_id, exc, states.RETRY, traceback=traceback, request=request)

    def mark_as_revoked(self, task_id: str, reason: str = "revoked", request: Any = None) -> None:
        self.store_result(task_id, TaskRevokedError(reason), states.REVOKED, request=request)

    def forget(self, task_id: str) -> None:
        self._delete_meta(task_id)

    # -- reading -------------------------------------------------------------------------
    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The decoded meta; an unknown id is PENDING (Celery stores no PENDING rows)."""
        return self._decoded(task_id, self._get_meta(task_id))

    def get_task_metas(self, task_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The decoded metas of ``task_ids``, in order (Redis: in one round trip)."""
        prepared = self._get_metas(task_ids)
        return [self._decoded(t, p) for t, p in zip(task_ids, prepared, strict=True)]

    def _decoded(self, task_id: str, prepared: dict[str, Any] | None) -> dict[str, Any]:
        if prepared is None:
            return {
                "status": states.PENDING,
                "result": None,
                "traceback": None,
                "children": [],
                "date_done": None,
                "task_id": task_id,
            }
        meta = self.meta_from_prepared(prepared)
        meta.setdefault("task_id", task_id)
        return meta

    def get_state(self, task_id: str) -> str:
        return str(self.get_task_meta(task_id)["status"])

    get_status = get_state

    def get_result(self, task_id: str) -> Any:
        return self.get_task_meta(task_id).get("result")

    def get_traceback(self, task_id: str) -> str | None:
        traceback: str | None = self.get_task_meta(task_id).get("traceback")
        return traceback

    def get_children(self, task_id: str) -> list[Any] | None:
        children: list[Any] | None = self.get_task_meta(task_id).get("children")
        return children

    def task_result_exists(self, task_id: str) -> bool:
        return self._get_meta(task_id) is not None

    def wait_for(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        on_interval: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Block until ``task_id`` is ready and return its meta.

        Raises:
            celeriac.exceptions.TimeoutError: not ready within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        read = not self._heard_since_send(task_id)
        while True:
            if read:
                self._before_read([task_id])
                meta = self.get_task_meta(task_id)
                if meta["status"] in self.READY_STATES:
                    return meta
            if on_interval is not None:
                on_interval()
            nap = interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not read:  # the deadline came before the first read: read once
                        read = True
                        continue
                    raise TimeoutError("The operation timed out.")
                nap = min(interval, remaining)
            self._wait([task_id], nap)
            read = True

    def iter_ready(
        self,
        task_ids: Sequence[str],
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        on_interval: Callable[[], None] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task_id, meta)`` for each of ``task_ids`` as it is found ready (Celery's
        ``iter_native``): every round reads all the pending ones together.

        Raises:
            celeriac.exceptions.TimeoutError: some not ready within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(dict.fromkeys(task_ids))
        while pending:
            self._before_read(pending)
            waiting: list[str] = []
            for task_id, meta in zip(pending, self.get_task_metas(pending), strict=True):
                if meta["status"] in self.READY_STATES:
                    yield task_id, meta
                else:
                    waiting.append(task_id)
            pending = waiting
            if not pending:
                return
            if on_interval is not None:
                on_interval()
            nap = interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                nap = min(interval, remaining)
            self._wait(pending, nap)

    # -- groups --------------------------------------------------------------------------
    def save_group(self, group_id: str, result: Any) -> Any:
        """Store a GroupResult (or its tuple) for ``GroupResult.restore``."""
        value = result.as_tuple() if hasattr(result, "as_tuple") else result
        self._set_group(group_id, value)
        return result

    def restore_group(self, group_id: str) -> GroupResult | None:
        value = self._get_group(group_id)
        if value is None:
            return None
        restored = result_from_tuple(value, backend=self)
        return restored if isinstance(restored, GroupResult) else None

    def delete_group(self, group_id: str) -> None:
        self._delete_group(group_id)

    # -- chords (stores that claim JoinsChords) -------------------------------------------
    def encode_chord_part(self, result: Any, state: str) -> bytes:
        """A chord header task's value as the store keeps it until the join."""
        return self.encode(self.encode_result(result, state))

    def decode_chord_part(self, data: bytes | str, state: str) -> Any:
        value = self.decode(data)
        return self.exception_to_python(value) if state in self.EXCEPTION_STATES else value

    def chord_claim_seconds(self) -> float:
        """How long the worker that completes a chord may take to publish the body before
        another worker (a redelivered header task) may take over: Celery's
        ``max(5, 2 x result_chord_join_timeout)``."""
        return float(max(5, int((self.conf.result_chord_join_timeout or 5.0) * 2)))

    # -- maintenance ---------------------------------------------------------------------
    def on_task_call(self, task_id: str) -> None:  # noqa: B027 - optional hook
        """Called by the producer just before a task is published (Celery's hook); the rpc
        backend declares its reply queue here."""

    def cleanup(self, now: datetime | None = None) -> int:
        """Delete results older than ``result_expires``; returns how many were removed."""
        if not self.expires:
            return 0
        moment = now or utcnow()
        return self._cleanup(moment - timedelta(seconds=self.expires))

    def as_uri(self, include_password: bool = False) -> str:
        return self.url if include_password else mask_url(self.url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.as_uri()}>"


__all__ = [
    "COMPRESSED_PAYLOAD_MAGIC",
    "EXTENDED_FIELDS",
    "PICKLE_SERIALIZERS",
    "ResultBackend",
    "decompress_payload",
    "parse_date_done",
    "utcnow",
]
