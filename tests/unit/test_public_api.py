"""The public surface is locked: exported names and Celery-compatible import paths."""

from __future__ import annotations

import importlib

import celeriac

EXPECTED_TOP_LEVEL = {
    "VERSION",
    "AsyncResult",
    "Celery",
    "Exchange",
    "GroupResult",
    "Queue",
    "ResultSet",
    "Task",
    "__version__",
    "current_app",
    "current_task",
    "shared_task",
    # Celery's canvas names.
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
}

# Celery import path -> names a Celery user imports from it.
COMPAT_PATHS = {
    "celeriac.result": {"AsyncResult", "EagerResult", "GroupResult", "ResultSet"},
    "celeriac.states": {
        "PENDING",
        "STARTED",
        "SUCCESS",
        "FAILURE",
        "RETRY",
        "REVOKED",
        "READY_STATES",
        "PROPAGATE_STATES",
        "state",
    },
    "celeriac.exceptions": {
        "NotRegistered",
        "TimeoutError",
        "Retry",
        "Reject",
        "Ignore",
        "MaxRetriesExceededError",
        "SoftTimeLimitExceeded",
        "TimeLimitExceeded",
        "WorkerLostError",
        "TaskRevokedError",
        "ImproperlyConfigured",
    },
    "celeriac.signals": {
        "task_prerun",
        "task_postrun",
        "task_success",
        "task_failure",
        "worker_ready",
        "worker_init",
        "before_task_publish",
        "after_task_publish",
    },
    "celeriac.utils.log": {"get_task_logger", "get_logger"},
    "celeriac.app": {"Celery", "shared_task"},
    "celeriac.app.task": {"Task", "Context"},
}


def test_top_level_all_is_pinned() -> None:
    assert set(celeriac.__all__) == EXPECTED_TOP_LEVEL
    for name in celeriac.__all__:
        assert hasattr(celeriac, name), name


def test_compat_import_paths() -> None:
    for path, names in COMPAT_PATHS.items():
        module = importlib.import_module(path)
        missing = {n for n in names if not hasattr(module, n)}
        assert not missing, f"{path} lacks {missing}"
        exported = set(getattr(module, "__all__", ()))
        assert names <= exported, f"{path}.__all__ lacks {names - exported}"


def test_version_matches_package_metadata() -> None:
    assert tuple(int(p) for p in celeriac.__version__.split(".")) == celeriac.VERSION


def test_current_app_follows_the_current_app() -> None:
    app = celeriac.Celery("currentcheck")
    assert celeriac.current_app.main == "currentcheck"
    assert celeriac.current_app == app


def test_ids_are_version_4_uuids_and_differ_in_a_forked_child() -> None:
    import os
    import uuid

    from celeriac.utils.ids import uuid4

    made = {uuid4() for _ in range(5000)}
    assert len(made) == 5000
    assert all(uuid.UUID(u).version == 4 and str(uuid.UUID(u)) == u for u in made)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next id must not repeat the parent's next one
        os.write(write, uuid4().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100).decode() != uuid4()
