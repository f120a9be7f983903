"""Task events from both prefork topologies: children fed by their parent (the embedded
broker; Redis with ``worker_direct_consume`` off) and children that consume for themselves
(Redis, RabbitMQ). Every event carries the worker's node name and main pid."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celery, states
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_until
from tests.integration.events_helpers import watching

pytestmark = pytest.mark.slow

TOPOLOGIES = [
    pytest.param("sqlite", True, id="sqlite-fed"),
    pytest.param("redis", False, id="redis-fed"),
    pytest.param("redis", True, id="redis-direct"),
    pytest.param("amqp", True, id="amqp-direct"),
]


@pytest.mark.parametrize(("broker", "direct"), TOPOLOGIES, indirect=["broker"])
def test_prefork_children_send_task_events(
    client: Celery,
    start_worker: WorkerFactory,
    broker: BrokerEnv,
    direct: bool,
    tmp_path: Path,
) -> None:
    with watching(client) as seen:
        worker = start_worker(
            "-P",
            "prefork",
            "-c",
            "2",
            "-E",
            "-n",
            "ev@test",
            conf={"worker_direct_consume": direct},
        )
        online = wait_until(lambda: seen.of_type("worker-online", hostname="ev@test"), "online")
        pid = worker.process.pid
        assert online[0]["pid"] == pid
        results = [client.send_task("tasks.add", (i, 1)) for i in range(4)]
        bad = client.send_task("tasks.boom", ("no",))
        assert [r.get(timeout=30) for r in results] == [1, 2, 3, 4]
        for result in results:
            wait_until(lambda r=result: seen.of_type("task-succeeded", uuid=r.id), "succeeded")
        wait_until(lambda: seen.of_type("task-failed", uuid=bad.id), "task-failed")
        for result in results:
            for type_ in ("task-received", "task-started", "task-succeeded"):
                (event,) = seen.of_type(type_, uuid=result.id)
                assert event["hostname"] == "ev@test" and event["pid"] == pid
            assert seen.state.tasks[result.id].state == states.SUCCESS
        # The worker's load: heartbeats count what it processed.
        client.control.broadcast("heartbeat")
        wait_until(
            lambda: any(e["processed"] >= 5 for e in seen.of_type("worker-heartbeat")),
            "a heartbeat counting the tasks (of every process)",
        )
        # A task ended by the worker (revoke with terminate): task-revoked from the parent.
        blocked = client.send_task("tasks.block", (str(tmp_path / "never"),))
        wait_until(lambda: seen.of_type("task-started", uuid=blocked.id), "the task started")
        client.control.revoke(blocked.id, terminate=True, signal="SIGKILL")
        (revoked,) = wait_until(lambda: seen.of_type("task-revoked", uuid=blocked.id), "revoked")
        assert revoked["terminated"] is True and revoked["signum"] == 9
        assert seen.state.tasks[blocked.id].state == states.REVOKED
        assert seen.state.workers["ev@test"].alive
        assert worker.stop() == 0
        wait_until(lambda: seen.of_type("worker-offline", hostname="ev@test"), "offline")
        assert not seen.state.workers["ev@test"].alive
