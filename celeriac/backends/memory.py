"""Process-local result backend (``cache+memory://`` or ``memory://``), for tests and demos.

Backends created with the same URL in one process share one store, so a client and an
in-thread worker built from the same configuration see each other's results. Documents are
kept encoded with the result serializer, exactly as a key-value store would hold them, so
values behave as they would through Redis (tuples come back as lists under JSON).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.backends.capabilities import ChordParts
from celeriac.backends.helpers import ChangeNotifier, utcnow

if TYPE_CHECKING:
    from celeriac.app.config import Settings


@dataclass
class _Entry:
    data: bytes
    content_type: str
    content_encoding: str
    state: str
    stored_at: datetime


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    notifier: ChangeNotifier = field(default_factory=ChangeNotifier)
    metas: dict[str, _Entry] = field(default_factory=dict)
    groups: dict[str, _Entry] = field(default_factory=dict)
    claims: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (id, until)
    chords: dict[str, _Chord | None] = field(default_factory=dict)  # None: done


@dataclass
class _Chord:
    size: int
    #: "<task id>:<group index>" -> (group index, task id, state, encoded value)
    parts: dict[str, tuple[float, str, str, bytes]] = field(default_factory=dict)
    claimed_until: float = 0.0


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store_for(url: str) -> _Store:
    # cache+memory://x and memory://x name the same store.
    key = url.split("://", 1)[-1]
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _Store()
        return store


def reset_memory_stores() -> None:
    """Forget every in-memory store of this process (test isolation)."""
    with _stores_lock:
        _stores.clear()


class MemoryBackend(ResultBackend):
    """Results in a dict shared by every backend of this process with the same URL."""

    schemes: ClassVar[tuple[str, ...]] = ("cache+memory", "memory")
    persistent: ClassVar[bool] = False

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self._store = _store_for(url)

    def _entry(self, data: bytes, state: str) -> _Entry:
        return _Entry(data, self.content_type, self.content_encoding, state, utcnow())

    def _load(self, entry: _Entry) -> Any:
        return self.decode(entry.data, entry.content_type, entry.content_encoding)

    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        with self._store.lock:
            entry = self._store.metas.get(task_id)
        if entry is None:
            return None
        return self.load_document(entry.data, entry.content_type, entry.content_encoding)

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        entry = self._entry(self.encode_document(meta), state)
        with self._store.lock:
            current = self._store.metas.get(task_id)
            if current is not None and current.state == states.SUCCESS:
                return
            self._store.metas[task_id] = entry
        self._store.notifier.notify()

    def _delete_meta(self, task_id: str) -> None:
        with self._store.lock:
            self._store.metas.pop(task_id, None)

    def _get_group(self, group_id: str) -> Any | None:
        with self._store.lock:
            entry = self._store.groups.get(group_id)
        if entry is None:
            return None
        document = self._load(entry)
        return document.get("result") if isinstance(document, dict) else None

    def _set_group(self, group_id: str, value: Any) -> None:
        # The same document Celery's key-value backends write: {"result": <group tuple>}.
        entry = self._entry(self.encode({"result": value}), states.SUCCESS)
        with self._store.lock:
            self._store.groups[group_id] = entry

    def _delete_group(self, group_id: str) -> None:
        with self._store.lock:
            self._store.groups.pop(group_id, None)

    def _cleanup(self, older_than: datetime) -> int:
        removed = 0
        with self._store.lock:
            for table in (self._store.metas, self._store.groups):
                expired = [key for key, entry in table.items() if entry.stored_at < older_than]
                for key in expired:
                    del table[key]
                removed += len(expired)
        return removed

    def claim_unique(self, key: str, task_id: str, ttl: float) -> str:
        now = time.monotonic()
        with self._store.lock:
            owner = self._store.claims.get(key)
            if owner is not None and owner[1] > now:
                return owner[0]
            self._store.claims[key] = (task_id, now + ttl)
            return task_id

    # -- chords (JoinsChords) ----------------------------------------------------------------
    def set_chord_size(self, group_id: str, size: int) -> None:
        with self._store.lock:
            self._store.chords[group_id] = _Chord(size)

    def chord_part_return(
        self, group_id: str, task_id: str, group_index: int | None, state: str, result: Any
    ) -> ChordParts | None:
        data = self.encode_chord_part(result, state)
        index = float("inf") if group_index is None else float(group_index)
        now = time.monotonic()
        with self._store.lock:
            chord = self._store.chords.get(group_id)
            if chord is None:
                return None  # done already, or not a chord this store knows
            chord.parts.setdefault(f"{task_id}:{group_index}", (index, task_id, state, data))
            if len(chord.parts) < chord.size or chord.claimed_until > now:
                return None
            chord.claimed_until = now + self.chord_claim_seconds()
            parts = sorted(chord.parts.values(), key=lambda p: p[0])
        results = [(tid, st, self.decode_chord_part(d, st)) for _, tid, st, d in parts]
        return ChordParts(group_id, results, group_id)

    def chord_done(self, parts: ChordParts) -> None:
        with self._store.lock:
            self._store.chords[parts.group_id] = None

    def add_to_chord(self, group_id: str) -> None:
        with self._store.lock:
            chord = self._store.chords.get(group_id)
            if chord is not None:
                chord.size += 1

    def _before_read(self, task_ids: Sequence[str]) -> None:
        self._store.notifier.mark()

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        self._store.notifier.wait(timeout)


__all__ = ["MemoryBackend", "reset_memory_stores"]
