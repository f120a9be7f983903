"""Honest first contact: a Celery feature celeriac lacks fails at once, saying what to do.

Every such use raises ``NotYetImplemented`` (a ``NotImplementedError``) naming the missing
feature and pointing at the compatibility matrix, and sends nothing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import FunctionType
from typing import Any

import pytest
from celery.worker.control import Panel  # type: ignore[import-untyped]

import celeriac
from celeriac import Celery
from celeriac.app.config import SETTINGS
from celeriac.app.control import Control
from celeriac.exceptions import CeleriacError, NotYetImplemented
from celeriac.utils.missing import COMPATIBILITY, REMOTE_CONTROL, startup_warnings
from celeriac.worker import worker as _worker  # noqa: F401 - registers every command
from celeriac.worker.commands import COMMANDS


def _refused(call: Callable[[], Any], *words: str) -> NotYetImplemented:
    with pytest.raises(NotYetImplemented) as info:
        call()
    message = str(info.value)
    for word in (*words, "celeriac does not have", "Instead,", COMPATIBILITY):
        assert word in message, (word, message)
    assert "issue" not in message  # about the user's problem, not the project's work list
    return info.value


def test_the_error_is_a_not_implemented_error_and_a_celeriac_error() -> None:
    err = NotYetImplemented("m", "the canvas", "delay()")
    assert isinstance(err, NotImplementedError)
    assert isinstance(err, CeleriacError)
    assert (err.feature, err.instead) == ("the canvas", "delay()")
    assert "NotYetImplemented" in celeriac.exceptions.__all__


def test_send_event_outside_a_worker_sends_nothing(memory_app: Celery) -> None:
    @memory_app.task(name="tasks.progress")
    def progress() -> None:
        return None

    assert progress.send_event("task-progress", done=1) is None  # no worker: no events


def test_empty_callback_options_are_accepted(memory_app: Celery) -> None:
    """Code that passes ``link=None`` (no callback) keeps working."""

    @memory_app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    add.apply_async((2, 2), link=None, link_error=None)
    memory_app.send_task("tasks.add", (1, 1), link=[])
    with memory_app.connection() as conn:
        assert conn.size("celery") == 2


def test_add_periodic_task_is_there(memory_app: Celery) -> None:
    memory_app.finalize()
    assert memory_app.add_periodic_task(10.0, "tasks.add", name="ten") == "ten"
    assert memory_app.conf.beat_schedule["ten"]["task"] == "tasks.add"


@pytest.mark.parametrize(
    "method",
    ["election", "revoke_by_stamped_headers"],
)
def test_control_methods_workers_do_not_answer_refuse(memory_app: Celery, method: str) -> None:
    err = _refused(lambda: getattr(memory_app.control, method)(), f"app.control.{method}()")
    assert "app.control.ping()" in err.instead


@pytest.mark.parametrize("method", ["objgraph", "hello"])
def test_inspect_methods_workers_do_not_answer_refuse(memory_app: Celery, method: str) -> None:
    inspect = memory_app.control.inspect(timeout=0.05)
    err = _refused(lambda: getattr(inspect, method)(), f"app.control.inspect().{method}()")
    assert "app.control.inspect()" in err.instead


def test_the_refusal_names_exactly_the_commands_workers_do_not_answer() -> None:
    """The words of the refusal follow the worker's command table: a command that arrives
    (autoscale, pool_restart did) leaves the "except ..." list."""
    named = REMOTE_CONTROL.feature.split("except ", 1)[1].split(";", 1)[0]
    refused = set(re.findall(r"\w+", named)) - {"and", "mingle"}
    assert refused == set(Panel.meta) - set(COMMANDS)  # Celery's worker commands, less ours
    assert {"autoscale", "pool_restart", "terminate", "memdump", "query_task"} <= set(COMMANDS)
    for name in ("election", "revoke_by_stamped_headers"):
        assert isinstance(getattr(Control, name), FunctionType)  # the client refuses them


def test_control_methods_that_exist_are_not_refused(memory_app: Celery) -> None:
    assert memory_app.control.ping(timeout=0.05) == []
    assert memory_app.control.purge() == 0
    assert memory_app.control.pool_restart(reply=True, timeout=0.05) == []


def test_no_startup_warnings_now_that_beat_and_events_exist(memory_app: Celery) -> None:
    conf = memory_app.conf
    conf.beat_schedule = {"every-minute": {"task": "tasks.add", "schedule": 60.0}}
    conf.worker_send_task_events = True
    assert startup_warnings(conf) == []  # beat runs the schedule; the worker sends events


def test_settings_of_features_that_arrived_no_longer_say_not_yet() -> None:
    for setting in SETTINGS:
        if setting.name.startswith(("beat_", "event_")) or setting.name.endswith(
            ("_events", "_event")
        ):
            assert "Not yet" not in setting.doc, setting.name


def test_import_path_defaults_can_be_imported() -> None:
    """No default names a ``module:attr`` that does not exist (``celeriac.beat:...``)."""
    for setting in SETTINGS:
        value = setting.default
        if isinstance(value, str) and ":" in value and "://" not in value and " " not in value:
            module, _, attr = value.partition(":")
            assert hasattr(importlib.import_module(module), attr), setting.name
