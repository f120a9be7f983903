"""The settings table, app.conf, config_from_object and config_from_envvar."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.app.config import SETTINGS, Settings, UnknownSettingWarning, nearest_setting
from celeriac.exceptions import ImproperlyConfigured

REQUIRED = [
    "broker_url",
    "result_backend",
    "task_serializer",
    "result_serializer",
    "accept_content",
    "result_accept_content",
    "timezone",
    "enable_utc",
    "task_default_queue",
    "task_ignore_result",
    "result_expires",
    "task_always_eager",
    "task_eager_propagates",
    "task_acks_late",
    "worker_concurrency",
    "worker_prefetch_multiplier",
    "imports",
    "include",
    "broker_transport_options",
]


@pytest.fixture
def module(request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    mod = types.ModuleType("celeriac_test_celeryconfig")
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_table_has_every_required_setting_with_defaults() -> None:
    names = {s.name for s in SETTINGS}
    assert set(REQUIRED) <= names
    conf = Settings()
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_default_queue == "celery"
    assert conf.worker_prefetch_multiplier == 4
    assert conf.result_expires == 86400.0
    assert conf.enable_utc is True


def test_old_uppercase_names_map_to_new_ones() -> None:
    conf = Settings({"BROKER_URL": "memory://", "CELERY_TASK_SERIALIZER": "pickle"})
    assert conf.broker_url == "memory://"
    assert conf["task_serializer"] == "pickle"
    assert conf["CELERY_TASK_SERIALIZER"] == "pickle"


def test_update_and_attribute_access() -> None:
    app = Celery("t", set_as_current=False)
    app.conf.update(task_acks_late=True, worker_concurrency=3)
    app.conf.task_ignore_result = True
    assert app.conf["task_acks_late"] is True
    assert app.conf.worker_concurrency == 3
    assert app.conf.task_ignore_result is True
    assert app.conf.changes()["worker_concurrency"] == 3


def test_unknown_setting_warns_with_nearest_name() -> None:
    conf = Settings()
    with pytest.warns(UnknownSettingWarning, match="Did you mean 'task_serializer'"):
        conf["task_serialiser"] = "json"
    assert nearest_setting("result_backed") == "result_backend"


def test_unknown_attribute_names_nearest() -> None:
    with pytest.raises(AttributeError, match="result_backend"):
        _ = Settings().result_backen


def test_values_are_normalised() -> None:
    conf = Settings({"accept_content": "json, pickle", "imports": "a.b"})
    assert conf.accept_content == ["json", "pickle"]
    assert conf.imports == ["a.b"]


def test_mutable_defaults_are_not_shared() -> None:
    conf = Settings()
    conf.broker_transport_options["x"] = 1
    assert Settings().broker_transport_options == {}


def test_config_from_object_module_name(module: types.ModuleType) -> None:
    module.broker_url = "memory://cfg"  # type: ignore[attr-defined]
    module.CELERY_RESULT_BACKEND = "cache+memory://cfg"  # type: ignore[attr-defined]
    module.MY_CONSTANT = 5  # type: ignore[attr-defined]  # a user constant: ignored, no warning
    app = Celery("t", set_as_current=False)
    app.config_from_object(module.__name__)
    assert app.conf.broker_url == "memory://cfg"
    assert app.conf.result_backend == "cache+memory://cfg"


def test_config_from_object_attr_and_class(module: types.ModuleType) -> None:
    class Config:
        task_default_queue = "special"

    module.settings = Config  # type: ignore[attr-defined]
    app = Celery("t", set_as_current=False)
    app.config_from_object(f"{module.__name__}:settings")
    assert app.conf.task_default_queue == "special"
    other = Celery("t", set_as_current=False)
    other.config_from_object(Config)
    assert other.conf.task_default_queue == "special"
    dotted = Celery("t", set_as_current=False)
    dotted.config_from_object(f"{module.__name__}.settings")
    assert dotted.conf.task_default_queue == "special"


def test_config_from_object_namespace(module: types.ModuleType) -> None:
    module.CELERY_BROKER_URL = "memory://ns"  # type: ignore[attr-defined]
    module.CELERY_TASK_ACKS_LATE = True  # type: ignore[attr-defined]
    module.DEBUG = True  # type: ignore[attr-defined]
    module.broker_url = "memory://ignored"  # type: ignore[attr-defined]
    app = Celery("t", set_as_current=False)
    app.config_from_object(module.__name__, namespace="CELERY")
    assert app.conf.broker_url == "memory://ns"
    assert app.conf.task_acks_late is True


def test_config_from_envvar(module: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    module.task_default_queue = "fromenv"  # type: ignore[attr-defined]
    monkeypatch.setenv("CELERIAC_TEST_CONFIG", module.__name__)
    app = Celery("t", set_as_current=False)
    assert app.config_from_envvar("CELERIAC_TEST_CONFIG") is True
    assert app.conf.task_default_queue == "fromenv"
    monkeypatch.delenv("CELERIAC_TEST_CONFIG")
    with pytest.raises(ImproperlyConfigured, match="CELERIAC_TEST_CONFIG"):
        app.config_from_envvar("CELERIAC_TEST_CONFIG")
    assert app.config_from_envvar("CELERIAC_TEST_CONFIG", silent=True) is False


def test_missing_config_module_raises_unless_silent() -> None:
    app = Celery("t", set_as_current=False)
    with pytest.raises(ImportError):
        app.config_from_object("no_such_celeriac_config_module")
    app.config_from_object("no_such_celeriac_config_module", silent=True)


def test_constructor_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    app = Celery(
        "proj",
        broker="memory://a",
        backend="cache+memory://a",
        include=["x.tasks"],
        set_as_current=False,
    )
    assert app.conf.broker_url == "memory://a"
    assert app.conf.result_backend == "cache+memory://a"
    assert app.conf.include == ["x.tasks"]
    assert app.main == "proj"


def test_broker_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://env")
    assert Celery("t", set_as_current=False).conf.broker_url == "memory://env"


def test_broker_settings_reach_the_transport_options() -> None:
    app = Celery("t", broker="memory://opts", set_as_current=False)
    app.conf.update(
        broker_heartbeat=30,
        task_publish_retry_policy={"max_retries": 1},
        broker_transport_options={"visibility_timeout": 7, "broker_heartbeat": 10},
    )
    options = app.connection().options
    assert options["visibility_timeout"] == 7
    assert options["broker_heartbeat"] == 10  # broker_transport_options win, as in kombu
    assert options["task_publish_retry_policy"] == {"max_retries": 1}
    assert options["broker_connection_timeout"] == 4.0
