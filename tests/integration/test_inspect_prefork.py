"""Inspect and control answered from both prefork topologies: children fed by their parent
(the embedded broker; Redis and RabbitMQ with ``worker_direct_consume`` off) and children that
consume for themselves and report what they run and hold (Redis, RabbitMQ). Every inspect and
control command of the issue is asked of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celery, states
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_state, wait_until
from tests.integration.events_helpers import watching
from tests.integration.test_inspect_worker import QUEUE_KEYS, STATS_KEYS, publish_like_celery

pytestmark = pytest.mark.slow

TOPOLOGIES = [
    pytest.param("sqlite", True, id="sqlite-fed"),
    pytest.param("redis", False, id="redis-fed"),
    pytest.param("redis", True, id="redis-direct"),
    pytest.param("amqp", False, id="amqp-fed"),
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


@pytest.mark.parametrize(("broker", "direct"), TOPOLOGIES, indirect=["broker"])
def test_prefork_workers_answer_the_other_commands(
    client: Celery, start_worker: WorkerFactory, broker: BrokerEnv, direct: bool, tmp_path: Path
) -> None:
    """reserved, active_queues, conf, report, memdump, stats, clock; rate_limit (a task held
    for its token is reserved), revoke of a held task, cancel_consumer (nothing of the queue
    runs after the reply), pool_shrink, time_limit (it reaches the process that runs the
    task), enable_events / disable_events, autoscale (not enabled here), heartbeat."""
    options = {"worker_direct_consume": direct, "worker_prefetch_multiplier": 1}
    start_worker("-P", "prefork", "-c", "2", "-n", NODE, conf=options)
    inspect = client.control.inspect(timeout=3.0, limit=1)
    (queue,) = inspect.active_queues()[NODE]
    assert set(queue) == QUEUE_KEYS and queue["name"] == "celery"
    stats = inspect.stats()[NODE]
    assert set(stats) >= STATS_KEYS and stats["pool"]["max-concurrency"] == 2
    conf = inspect.conf()[NODE]
    assert conf["worker_direct_consume"] is direct and conf["worker_prefetch_multiplier"] == 1
    assert "celeriac" in inspect.report()[NODE]["ok"]
    memory = inspect.memdump()[NODE].splitlines()
    assert memory[0].startswith("- rss (this process ") and memory[0].endswith(" KiB")
    assert {int(line.split()[4].rstrip("):")) for line in memory[1:]} == set(
        stats["pool"]["processes"]
    )
    assert all(int(line.split()[-2]) > 1000 for line in memory[1:])  # KiB, read from /proc
    assert inspect.clock()[NODE]["clock"] > 0

    # A rate limit set at run time: the first task runs, the second is held (reserved) for
    # its token, by the worker or by the child that took it (they share the worker's buckets).
    replies = client.control.rate_limit("tasks.add", "1/h", reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "new rate limit set successfully"}}]
    assert client.send_task("tasks.add", (1, 2)).get(timeout=30) == 3
    held = client.send_task("tasks.add", (2, 3))
    wait_until(
        lambda: held.id in {r["id"] for r in (inspect.reserved() or {}).get(NODE, [])},
        "the rate-limited task reserved",
    )
    assert inspect.query_task(held.id)[NODE][held.id][0] == "reserved"
    client.control.revoke(held.id)
    assert wait_state(client, held.id, states.REVOKED) == states.REVOKED
    replies = client.control.rate_limit("tasks.add", None, reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "rate limit disabled successfully"}}]
    assert [client.send_task("tasks.add", (i, i)).get(timeout=30) for i in range(3)] == [0, 2, 4]

    # A queue added then cancelled: a task sent to it afterwards stays in the broker.
    replies = client.control.add_consumer("extraq", reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "add consumer extraq"}}]
    assert client.send_task("tasks.add", (2, 2), queue="extraq").get(timeout=30) == 4
    replies = client.control.cancel_consumer("extraq", reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "no longer consuming from extraq"}}]
    assert [q["name"] for q in inspect.active_queues()[NODE]] == ["celery"]
    left = client.send_task("tasks.add", (3, 3), queue="extraq")
    assert client.send_task("tasks.add", (4, 4)).get(timeout=30) == 8  # the worker goes on
    assert client.backend.get_state(left.id) == states.PENDING

    # A soft time limit set at run time cuts the next run short, in whichever child runs it.
    replies = client.control.time_limit("tasks.block", soft=0.5, reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "time limits set successfully"}}]
    limited = client.send_task("tasks.block", (str(tmp_path / "never"),))
    assert wait_state(client, limited.id, states.FAILURE, states.SUCCESS) == states.FAILURE
    assert type(limited.result).__name__ == "SoftTimeLimitExceeded"
    client.control.time_limit("tasks.block", soft=None, reply=True, timeout=5, limit=1)

    # Task events switched on and off at run time, sent by the children that run the tasks.
    with watching(client) as seen:
        replies = client.control.enable_events(reply=True, timeout=5, limit=1)
        assert replies == [{NODE: {"ok": "task events enabled"}}]
        seen_now = client.send_task("tasks.add", (5, 5))
        assert seen_now.get(timeout=30) == 10
        wait_until(lambda: seen.of_type("task-succeeded", uuid=seen_now.id), "task-succeeded")
        (started,) = seen.of_type("task-started", uuid=seen_now.id)
        assert started["hostname"] == NODE
        replies = client.control.disable_events(reply=True, timeout=5, limit=1)
        assert replies == [{NODE: {"ok": "task events disabled"}}]
        unseen = client.send_task("tasks.add", (6, 6))
        assert unseen.get(timeout=30) == 12
        beats = len(seen.of_type("worker-heartbeat", hostname=NODE))
        client.control.heartbeat()  # sent after the task's events would have been
        wait_until(
            lambda: len(seen.of_type("worker-heartbeat", hostname=NODE)) > beats, "a heartbeat"
        )
        assert not seen.of_type("task-received", uuid=unseen.id)

    replies = client.control.autoscale(3, 1, reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"error": "Autoscale not enabled"}}]
    replies = client.control.pool_shrink(1, reply=True, timeout=5, limit=1)
    assert replies == [{NODE: {"ok": "pool will shrink"}}]
    wait_until(lambda: len(inspect.stats()[NODE]["pool"]["processes"]) == 1, "one child left")
    assert client.send_task("tasks.add", (7, 7)).get(timeout=30) == 14
