"""Inspect and control answered from both prefork topologies: children fed by their parent
(the embedded broker; Redis with ``worker_direct_consume`` off) and children that consume
for themselves and report what they run and hold (Redis, RabbitMQ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celery, states
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_state, wait_until
from tests.integration.test_inspect_worker import publish_like_celery

pytestmark = pytest.mark.slow

TOPOLOGIES = [
    pytest.param("sqlite", True, id="sqlite-fed"),
    pytest.param("redis", False, id="redis-fed"),
    pytest.param("redis", True, id="redis-direct"),
    pytest.param("amqp", True, id="amqp-direct"),
]
NODE = "insp@test"


@pytest.mark.parametrize(("broker", "direct"), TOPOLOGIES, indirect=["broker"])
def test_prefork_workers_answer_inspect_and_control(
    client: Celery, start_worker: WorkerFactory, broker: BrokerEnv, direct: bool, tmp_path: Path
) -> None:
    options = {"worker_direct_consume": direct, "worker_prefetch_multiplier": 4}
    worker = start_worker("-P", "prefork", "-c", "2", "-n", NODE, conf=options)
    inspect = client.control.inspect(timeout=3.0, limit=1)
    assert inspect.ping() == {NODE: {"ok": "pong"}}
    # Held by the worker for its ETA (by a child, where children consume).
    later = publish_like_celery(client, "tasks.add", countdown=30)
    wait_until(
        lambda: [e["request"]["id"] for e in (inspect.scheduled() or {}).get(NODE, [])] == [later],
        "the ETA task scheduled",
    )
    release = tmp_path / "release"
    blocked = []
    for _ in range(2):  # one at a time: each goes to an idle child
        blocked.append(client.send_task("tasks.block", (str(release),)))
        wait_state(client, blocked[-1].id, states.STARTED)
    waiting = client.send_task("tasks.add", (1, 2))

    def active_ids() -> set[str]:
        return {t["id"] for t in (inspect.active() or {}).get(NODE, [])}

    wait_until(lambda: active_ids() == {r.id for r in blocked}, "both tasks active")
    active = inspect.active()[NODE]
    assert {t["name"] for t in active} == {"tasks.block"}
    assert all(t["hostname"] == NODE and t["time_start"] for t in active)
    children = set(inspect.stats()[NODE]["pool"]["processes"])
    assert len(children) == 2 and worker.process.pid not in children
    if broker.kind != "sqlite" and direct:  # the children that run them say so
        assert {t["worker_pid"] for t in active} == children
    query = inspect.query_task(blocked[0].id, later)[NODE]
    assert query[blocked[0].id][0] == "active" and query[later][0] == "scheduled"
    assert "tasks.add" in inspect.registered()[NODE]
    release.touch()
    assert waiting.get(timeout=30) == 3
    assert [r.get(timeout=30) for r in blocked] == ["released", "released"]
    wait_until(
        lambda: inspect.stats()[NODE]["total"] == {"tasks.block": 2, "tasks.add": 1},
        "the counters of every process",
    )
    client.control.revoke(later)
    wait_until(lambda: later in inspect.revoked()[NODE], "revoked")
    replies = client.control.add_consumer("extraq", reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "add consumer extraq"}}]
    assert client.send_task("tasks.add", (2, 2), queue="extraq").get(timeout=30) == 4
    replies = client.control.pool_grow(1, reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "pool will grow"}}]
    wait_until(lambda: len(inspect.stats()[NODE]["pool"]["processes"]) == 3, "a third child")
    replies = client.control.shutdown(destination=[NODE], reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "shutting down"}}]
    assert worker.wait_exit() == 0
