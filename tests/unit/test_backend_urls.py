"""result_backend URL -> backend, and the backend used when none is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac.app.config import Settings
from celeriac.backends.disabled import E_NO_BACKEND, DisabledBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.schemes import backend_from_url
from celeriac.backends.sqlite import SQLiteBackend, path_from_url
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured, NotConfigured
from celeriac.result import AsyncResult


@pytest.mark.parametrize("url", [None, ""])
def test_no_url_is_disabled(url: str | None) -> None:
    assert isinstance(backend_from_url(url, Settings()), DisabledBackend)


def test_known_schemes(tmp_path: Path) -> None:
    conf = Settings()
    assert isinstance(backend_from_url("cache+memory://", conf), MemoryBackend)
    assert isinstance(backend_from_url("memory://x", conf), MemoryBackend)
    sqlite = backend_from_url(f"db+sqlite:///{tmp_path}/r.db", conf)
    assert isinstance(sqlite, SQLiteBackend)
    assert sqlite.path == f"{tmp_path}/r.db"


def test_memory_urls_share_a_store() -> None:
    conf = Settings()
    writer = backend_from_url("cache+memory://shared-url-test", conf)
    reader = backend_from_url("memory://shared-url-test", conf)
    writer.mark_as_done("t", 1)
    assert reader.get_result("t") == 1


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("db+sqlite:///results.sqlite", "results.sqlite"),
        ("db+sqlite:////abs/results.sqlite", "/abs/results.sqlite"),
        ("db+sqlite://", ":memory:"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert path_from_url(url) == path


@pytest.mark.parametrize("url", ["mongodb://u:secret@localhost/1", "db+oracle://u:secret@h/db"])
def test_later_backends_are_named(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="not available in this version") as info:
        backend_from_url(url, Settings())
    assert "secret" not in str(info.value)


def test_unknown_scheme_suggests_and_masks() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Did you mean redis://\?") as info:
        backend_from_url("rediz://user:hunter2@host/0", Settings())
    assert "hunter2" not in str(info.value)
    with pytest.raises(ImproperlyConfigured, match=r"db\+sqlite://"):
        backend_from_url("sqlite:///results.sqlite", Settings())


def test_mask_url_masks_as_celery_does() -> None:
    assert mask_url("redis://:pw@host:6379/0") == "redis://:**@host:6379/0"
    assert mask_url("amqp://user:pw@host//") == "amqp://user:**@host//"
    assert mask_url("db+sqlite:///x.db") == "db+sqlite:///x.db"


def test_disabled_backend_reads_explain_the_fix() -> None:
    backend = backend_from_url(None, Settings())
    backend.mark_as_done("t", 1)  # stores are no-ops
    backend.store_result("t", 1, "SUCCESS")
    assert E_NO_BACKEND.startswith("No result backend is configured. Set result_backend")
    with pytest.raises(NotConfigured, match="No result backend is configured"):
        backend.get_task_meta("t")
    with pytest.raises(NotConfigured):
        AsyncResult("t", backend=backend).get(timeout=1)
    with pytest.raises(NotConfigured):
        backend.restore_group("g")


def test_unknown_serializer_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="result_serializer"):
        MemoryBackend("memory://bad-serializer", Settings({"result_serializer": "jsn"}))


class CompressingMemoryBackend(MemoryBackend):
    supports_result_compression = True


def test_result_compression_round_trip() -> None:
    conf = Settings({"result_compression": "gzip"})
    backend = CompressingMemoryBackend("memory://compressed", conf)
    document = backend.encode_document({"status": "SUCCESS", "result": "x" * 1000})
    assert document.startswith(b"\x00celery-compressed\x00application/x-gzip\x00")
    backend.mark_as_done("t", "x" * 1000)
    # A reader without compression configured still reads it.
    assert MemoryBackend("memory://compressed", Settings()).get_result("t") == "x" * 1000


def test_result_compression_ignored_with_a_warning_where_unsupported() -> None:
    with pytest.warns(UserWarning, match="cannot store compressed payloads"):
        backend = MemoryBackend("memory://not-compressed", Settings({"result_compression": "gzip"}))
    assert backend.compression is None


def test_unknown_compression_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured):
        CompressingMemoryBackend("memory://bad-comp", Settings({"result_compression": "zzz"}))


def test_sqlite_in_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"db+sqlite:///{tmp_path}/missing/r.db", Settings())
    with pytest.raises(ImproperlyConfigured, match=r"missing/r\.db"):
        backend.get_task_meta("t")


def test_sqlite_reopens_after_close(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"db+sqlite:///{tmp_path}/r.db", Settings())
    backend.mark_as_done("t", 1)
    backend.close()
    assert backend.get_result("t") == 1
