"""app.control sends Celery's pidbox request; the worker's command table answers it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from celeriac import Celery
from celeriac.protocol import serialization
from celeriac.protocol.message import Message
from celeriac.worker.commands import COMMANDS, ControlContext, selected
from celeriac.worker.inspection import broker_stats
from tests.vectors import load_vector


def _captured(app: Celery, action: Any) -> tuple[Message, dict[str, Any]]:
    with app.connection() as conn:
        sub = conn.fanout_subscribe("celery.pidbox")
        action()
        (message,) = sub.get(timeout=1)
        sub.close()
    body = serialization.loads(
        message.body, message.content_type, message.content_encoding, accept=None
    )
    return message, body


def test_revoke_request_matches_celery(memory_app: Celery) -> None:
    message, body = _captured(
        memory_app, lambda: memory_app.control.revoke("00000000-0000-0000-0000-00000000dead")
    )
    reference = load_vector("pidbox_requests_redis")["requests"]["revoke"]
    expected = dict(reference["body_json"])
    expected.pop("ticket"), expected.pop("reply_to")  # only sent when a reply is wanted
    assert body == expected
    assert set(message.headers) == set(reference["envelope"]["headers"]) == {"clock", "expires"}
    assert message.content_type == "application/json"
    assert message.properties["delivery_mode"] == 2


def test_rate_limit_request_with_reply_matches_celery(memory_app: Celery) -> None:
    _, body = _captured(
        memory_app,
        lambda: memory_app.control.rate_limit("tasks.add", "100/m", reply=True, timeout=0.01),
    )
    reference = load_vector("pidbox_requests_redis")["requests"]["rate_limit"]["body_json"]
    assert set(body) == set(reference)
    assert body["arguments"] == reference["arguments"]
    assert body["reply_to"]["exchange"] == "reply.celery.pidbox"


def test_revoke_list_of_ids(memory_app: Celery) -> None:
    _, body = _captured(memory_app, lambda: memory_app.control.revoke(["a", "b"], terminate=True))
    assert body["arguments"] == {"task_id": ["a", "b"], "terminate": True, "signal": "SIGTERM"}


def test_selection_rules() -> None:
    assert selected({"destination": None}, "w1@h")
    assert selected({"destination": ["w1@h"]}, "w1@h")
    assert not selected({"destination": ["w2@h"]}, "w1@h")
    assert selected({"pattern": "w*@h", "matcher": "glob"}, "w1@h")
    assert not selected({"pattern": "^x", "matcher": "pcre"}, "w1@h")


def test_command_table_has_the_basic_commands() -> None:
    assert {"ping", "revoke", "rate_limit", "time_limit"} <= set(COMMANDS)


@pytest.mark.parametrize(
    ("url", "tls"),
    [
        ("redis://h:6379/0", False),
        ("rediss://h/0", True),
        ("amqp://h//", False),
        ("amqps://h//", True),
    ],
)
def test_broker_stats_say_tls_only_for_tls_urls(url: str, tls: bool) -> None:
    app = Celery("stats", broker=url, set_as_current=False)
    assert broker_stats(cast(ControlContext, SimpleNamespace(app=app)))["ssl"] is tls


def test_pool_restart_is_refused_with_the_way_to_reload() -> None:
    reply = COMMANDS["pool_restart"](cast(ControlContext, SimpleNamespace()))
    assert reply["error"].startswith("Pool restarts not enabled")
    assert "restart the worker" in reply["error"]


def test_purge_empties_the_apps_task_queues_and_says_how_many(memory_app: Celery) -> None:
    for number in range(3):
        memory_app.send_task("tasks.add", (number, number))
    memory_app.send_task("tasks.add", (0, 0), queue="elsewhere")  # not one of the app's
    assert memory_app.control.purge() == 3
    assert memory_app.control.discard_all() == 0
    with memory_app.connection() as conn:
        assert conn.size("celery") == 0 and conn.size("elsewhere") == 1


def test_pool_restart_request_is_celerys(memory_app: Celery) -> None:
    _, body = _captured(
        memory_app, lambda: memory_app.control.pool_restart(["proj.tasks"], reload=True)
    )
    assert body["method"] == "pool_restart"
    assert body["arguments"] == {"modules": ["proj.tasks"], "reload": True, "reloader": None}
