"""The web monitor against a real worker (embedded SQLite broker, threads pool): Flower's API
with Flower 2.2's JSON shapes (compared with the captured responses), the controls, /metrics
and the pages. One worker and one monitor for the whole module."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.beat.store_backends import store_for
from celeriac.testing import start_worker
from celeriac.web.monitor import Monitor
from celeriac.web.security import Access
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore
from tests.integration.broker_envs import make_env
from tests.integration.conftest import wait_until
from tests.web_server import serving

pytestmark = pytest.mark.slow

REFERENCE = json.loads((Path(__file__).parents[1] / "reference" / "flower_api.json").read_text())


class Cluster:
    def __init__(self, app: Celery, monitor: Monitor, client: httpx.Client, node: str) -> None:
        self.app = app
        self.monitor = monitor
        self.client = client
        self.node = node

    def info(self, task_id: str) -> dict[str, Any] | None:
        response = self.client.get(f"/api/task/info/{task_id}")
        return response.json() if response.status_code == 200 else None

    def wait_state(self, task_id: str, state: str) -> dict[str, Any]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: (info := self.info(task_id)) and info["state"] == state and info,
            f"{task_id} {state} in the monitor",
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = make_env("sqlite", tmp_path_factory.mktemp("web"))
    app = env.app("wtasks")
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True
    app.conf.task_dead_letter_queue = "{queue}.dead"
    app.conf.beat_schedule_store = True  # on the broker (SQLite here)
    release = threading.Event()

    @app.task(name="wtasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="wtasks.fail")
    def fail(x: int) -> None:
        raise ValueError(f"boom {x}")

    @app.task(name="wtasks.wait")
    def wait() -> str:
        release.wait(20)
        return "released"

    @app.task(name="wtasks.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="wtasks.fanout")
    def fanout(n: int) -> None:
        chord([add.s(i, i) for i in range(n)])(tsum.s())

    del fail, wait, fanout
    store = TaskStore(str(env.tmp_path / "monitor.sqlite"))
    monitor = Monitor(app, store, inspect_timeout=2.0, flush_interval=0.05, queue_interval=0.5)
    monitor.start()
    try:
        with (
            start_worker(app, pool="threads", concurrency=2) as worker,
            serving(create_app(monitor, Access())) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            node = worker.hostname
            wait_until(
                lambda: client.get("/api/workers?status=1").json().get(node), "worker online"
            )
            yield Cluster(app, monitor, client, node)
            release.set()
    finally:
        monitor.stop()
        store.close()
        app.close()
        env.cleanup()


def test_workers_answer_with_flowers_shapes(cluster: Cluster) -> None:
    client, node = cluster.client, cluster.node
    assert client.get("/api/workers?status=1").json()[node] is True
    workers = client.get("/api/workers?refresh=1").json()
    reference = REFERENCE["api_workers_refresh"]["json"]["fw1@vm"]
    assert set(reference) <= set(workers[node])
    info = workers[node]
    assert "wtasks.add" in info["registered"]
    assert [q["name"] for q in info["active_queues"]] == ["celery"]
    assert {"pid", "pool", "total", "broker"} <= set(info["stats"])
    # one level down too: what scripts read of a worker's stats and queues
    assert set(reference["stats"]) <= set(info["stats"])
    for part in ("broker", "pool"):
        assert set(reference["stats"][part]) - {"writes", "put-guarded-by-semaphore"} <= set(
            info["stats"][part]
        ), part
    assert set(reference["active_queues"][0]) <= set(info["active_queues"][0])
    assert set(reference["active_queues"][0]["exchange"]) <= set(
        info["active_queues"][0]["exchange"]
    )
    assert client.get("/api/workers?workername=nobody@nowhere").status_code == 404


def test_task_info_and_listing_match_flower(cluster: Cluster) -> None:
    app, client = cluster.app, cluster.client
    ok = app.send_task("wtasks.add", (2, 3))
    bad = app.send_task("wtasks.fail", (7,))
    success = cluster.wait_state(ok.id, states.SUCCESS)
    failure = cluster.wait_state(bad.id, states.FAILURE)
    reference = REFERENCE["api_task_info_success"]["json"]
    assert set(success) == set(reference)
    assert success["args"] == "(2, 3)" and success["kwargs"] == "{}"
    assert success["result"] == "5" and success["worker"] == cluster.node
    assert success["client"].startswith("gen") and success["root"] == ok.id
    assert success["runtime"] >= 0 and success["routing_key"] == "celery"
    for key in ("sent", "received", "started", "succeeded", "timestamp"):
        assert isinstance(success[key], float), key
    assert set(failure) == set(REFERENCE["api_task_info_failure"]["json"])
    assert failure["exception"] == "ValueError('boom 7')"
    assert "ValueError: boom 7" in failure["traceback"]

    listing = client.get("/api/tasks").json()
    assert {ok.id, bad.id} <= set(listing)
    flowers = next(iter(REFERENCE["api_tasks"]["json"].values()))
    assert all(set(doc) == set(flowers) for doc in listing.values())
    failed = client.get("/api/tasks?state=FAILURE").json()
    assert bad.id in failed and ok.id not in failed
    named = client.get("/api/tasks", params={"taskname": "wtasks.add", "limit": 1}).json()
    assert len(named) == 1 and next(iter(named.values()))["name"] == "wtasks.add"
    found = client.get("/api/tasks", params={"search": "7,"}).json()
    assert bad.id in found and ok.id not in found
    assert client.get("/api/tasks?sort_by=nonsense").status_code == 400
    types = client.get("/api/task/types").json()
    assert {"wtasks.add", "wtasks.fail"} <= set(types["task-types"])

    result = client.get(f"/api/task/result/{ok.id}").json()
    assert result == {"task-id": ok.id, "state": "SUCCESS", "result": 5}
    result = client.get(f"/api/task/result/{bad.id}").json()
    assert set(result) == set(REFERENCE["api_task_result_failure"]["json"])
    assert result["result"] == "ValueError('boom 7')"
    assert client.get("/api/task/info/nothing-like-it").status_code == 404


def test_apply_and_send_by_name(cluster: Cluster) -> None:
    client = cluster.client
    applied = client.post("/api/task/async-apply/wtasks.add", json={"args": [3, 4]}).json()
    assert set(applied) == set(REFERENCE["api_task_async_apply"]["json"])
    sent = client.post("/api/task/send-task/wtasks.add", json={"args": [5, 6]}).json()
    assert set(sent) == set(REFERENCE["api_task_send_task"]["json"])
    assert cluster.app.AsyncResult(applied["task-id"]).get(timeout=10) == 7
    assert cluster.app.AsyncResult(sent["task-id"]).get(timeout=10) == 11
    unknown = client.post("/api/task/async-apply/wtasks.nope", json={"args": []})
    assert unknown.status_code == 404 and "send-task" in unknown.json()["error"]
    bad = client.post("/api/task/send-task/wtasks.add", content=b"[1, 2]")
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]


def test_revoke_a_waiting_task(cluster: Cluster) -> None:
    # Waiting in a queue no worker consumes yet; revoked; then the worker is told to consume
    # that queue: it discards the task and says so.
    client, node = cluster.client, cluster.node
    later = cluster.app.send_task("wtasks.add", (1, 1), queue="parked")
    cluster.wait_state(later.id, states.PENDING)
    answer = client.post(f"/api/task/revoke/{later.id}", data={"terminate": "false"})
    assert answer.json() == {"message": f"Revoked '{later.id}'"}
    added = client.post(f"/api/worker/queue/add-consumer/{node}", data={"queue": "parked"})
    assert added.json() == {"message": "add consumer parked"}
    cluster.wait_state(later.id, states.REVOKED)
    client.post(f"/api/worker/queue/cancel-consumer/{node}", data={"queue": "parked"})


@pytest.mark.parametrize("carrier", ["data", "params"], ids=["form", "query-string"])
def test_worker_controls_answer_as_flower(cluster: Cluster, carrier: str) -> None:
    # Flower reads each argument from the query string or the form (Tornado's
    # get_argument); its documented examples use the query string, so scripts do too.
    client, node = cluster.client, cluster.node

    def post(path: str, **arguments: str) -> Any:
        return client.post(path, **{carrier: arguments})

    limit = post("/api/task/rate-limit/wtasks.add", workername=node, ratelimit="20/m")
    assert limit.json() == REFERENCE["api_task_rate_limit"]["json"]
    post("/api/task/rate-limit/wtasks.add", workername=node, ratelimit="0")
    timeout = post("/api/task/timeout/wtasks.add", workername=node, hard="10", soft="5")
    assert timeout.json() == REFERENCE["api_task_timeout"]["json"]
    grow = post(f"/api/worker/pool/grow/{node}", n="1")
    assert grow.json() == {"message": f"Growing '{node}' worker's pool by 1"}
    shrink = post(f"/api/worker/pool/shrink/{node}", n="1")
    assert shrink.json() == {"message": f"Shrinking '{node}' worker's pool by 1"}
    add = post(f"/api/worker/queue/add-consumer/{node}", queue="extra")
    assert add.json() == REFERENCE["api_worker_queue_add"]["json"]
    cancel = post(f"/api/worker/queue/cancel-consumer/{node}", queue="extra")
    assert cancel.json() == REFERENCE["api_worker_queue_cancel"]["json"]
    unknown = post("/api/worker/pool/grow/nobody@nowhere", n="1")
    assert unknown.status_code == 404 and "Unknown worker" in unknown.json()["error"]
    bad = post(f"/api/worker/pool/grow/{node}", n="many")
    assert bad.status_code == 400 and "n must be a whole number" in bad.json()["error"]


def test_the_form_wins_over_the_query_string_and_revoke_reads_it(cluster: Cluster) -> None:
    client, node = cluster.client, cluster.node
    # the form's value wins over the query string's, as in Tornado
    both = client.post(f"/api/worker/pool/grow/{node}?n=5", data={"n": "1"})
    assert both.json() == {"message": f"Growing '{node}' worker's pool by 1"}
    client.post(f"/api/worker/pool/shrink/{node}", data={"n": "1"})
    later = cluster.app.send_task("wtasks.add", (2, 2), queue="parked-q")
    cluster.wait_state(later.id, states.PENDING)
    revoked = client.post(f"/api/task/revoke/{later.id}?terminate=true&signal=SIGKILL")
    assert revoked.json() == {"message": f"Revoked '{later.id}'"}
    with cluster.monitor.control_lock:  # the monitor's requests share the reply queue
        revoked_ids = cluster.app.control.inspect(destination=[node], timeout=5).revoked()
    assert later.id in revoked_ids[node]
    unclear = client.post(f"/api/task/revoke/{later.id}?terminate=perhaps")
    assert unclear.status_code == 400 and "terminate must be true or false" in unclear.text


def test_autoscale_refused_by_a_fixed_pool_says_why(cluster: Cluster) -> None:
    node = cluster.node
    answer = cluster.client.post(
        f"/api/worker/pool/autoscale/{node}", data={"min": "1", "max": "3"}
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == f"Failed to autoscale '{node}': Autoscale not enabled"
    missing = cluster.client.post(f"/api/worker/pool/autoscale/{node}", data={"min": "1"})
    assert missing.status_code == 400 and "min and max" in missing.json()["error"]


def test_shutdown_a_worker_from_the_api(cluster: Cluster) -> None:
    client = cluster.client
    with start_worker(cluster.app, pool="solo", hostname="doomed@web") as doomed:
        node = doomed.hostname
        wait_until(lambda: client.get("/api/workers?status=1").json().get(node), "online")
        answer = client.post(f"/api/worker/shutdown/{node}")
        assert answer.json() == {"message": "Shutting down!"}
        wait_until(lambda: client.get("/api/workers?status=1").json().get(node) is False, "offline")
    assert client.get("/api/workers?status=1").json()[cluster.node] is True


def test_concurrent_controls_and_inspects_each_get_their_answers(cluster: Cluster) -> None:
    # Replies share one reply queue and a request drops what is not its own: the monitor
    # asks one thing at a time, so no request loses its answer to another.
    node, url = cluster.node, str(cluster.client.base_url)
    calls = {
        "refresh": lambda c: c.get("/api/workers?refresh=1").json()[node],
        "limit": lambda c: c.post(
            "/api/task/rate-limit/wtasks.add", data={"workername": node, "ratelimit": "0"}
        ).json(),
        "timeout": lambda c: c.post(
            "/api/task/timeout/wtasks.add", data={"workername": node, "soft": "50"}
        ).json(),
    }
    results: dict[str, Any] = {}

    def run(key: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            results[key] = calls[key](client)

    calls.update({f"refresh-{n}": calls["refresh"] for n in range(3)})
    threads = [threading.Thread(target=run, args=(key,)) for key in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for key in ("refresh", "refresh-0", "refresh-1", "refresh-2"):
        assert set(REFERENCE["api_workers_refresh"]["json"]["fw1@vm"]) <= set(results[key])
    assert results["limit"] == REFERENCE["api_task_rate_limit"]["json"]
    assert results["timeout"] == REFERENCE["api_task_timeout"]["json"]


def test_queue_lengths(cluster: Cluster) -> None:
    lengths = cluster.client.get("/api/queues/length").json()
    assert set(lengths) == set(REFERENCE["api_queues_length"]["json"])
    assert [q["name"] for q in lengths["active_queues"]] == ["celery"]
    assert isinstance(lengths["active_queues"][0]["messages"], int)


def test_metrics_use_flowers_names(cluster: Cluster) -> None:
    done = cluster.app.send_task("wtasks.add", (1, 2))
    cluster.wait_state(done.id, states.SUCCESS)
    text = cluster.client.get("/metrics").text
    node = cluster.node
    assert f'flower_events_total{{task="wtasks.add",type="task-succeeded",worker="{node}"}}' in text
    assert f'flower_worker_online{{worker="{node}"}} 1.0' in text
    assert f'flower_task_runtime_seconds_count{{task="wtasks.add",worker="{node}"}}' in text
    assert "# TYPE flower_task_runtime_seconds histogram" in text
    assert "flower_worker_number_of_currently_executing_tasks" in text


def test_the_workflow_view_draws_a_chord_launched_by_a_task(cluster: Cluster) -> None:
    client = cluster.client
    start = cluster.app.send_task("wtasks.fanout", (3,))
    cluster.wait_state(start.id, states.SUCCESS)

    def callback() -> dict[str, Any] | None:
        found = client.get("/api/tasks", params={"taskname": "wtasks.tsum", "search": ""}).json()
        return next((t for t in found.values() if t["root_id"] == start.id), None)

    done = wait_until(lambda: (t := callback()) and t["state"] == "SUCCESS" and t, "the callback")
    assert done["result"] == "6"  # 0+0 + 1+1 + 2+2
    header = client.get(f"/api/task/info/{start.id}").json()["children"]
    assert len(header) == 3
    assert done["parent_id"] in header  # the header task that completed the chord
    # the callback can finish before the last header task's task-succeeded event arrives
    # (that task sends it after completing the chord): wait for the page to show all five
    page = wait_until(
        lambda: (
            (text := client.get(f"/workflow/{done['uuid']}").text).count('data-state="SUCCESS"')
            == 5
            and text
        ),
        "every task of the chord SUCCESS in the workflow view",
    )
    for uuid in [start.id, *header, done["uuid"]]:
        assert f'data-task="{uuid}"' in page
    # fanout -> 3 header tasks, each header task -> the callback (celeriac's `group` field)
    assert page.count('class="edge"') == 6 and page.count('data-state="SUCCESS"') == 5
    assert 'id="workflow-link"' in client.get(f"/task/{start.id}").text
    for page_path in ("/task/never-seen", "/workflow/never-seen"):
        unknown = client.get(page_path)
        assert unknown.status_code == 404
        assert "Unknown task &#39;never-seen&#39; (not seen by this monitor)" in unknown.text


def _workflow(client: httpx.Client, task_id: str) -> tuple[str, set[str], list[str]]:
    page = client.get(f"/workflow/{task_id}").text
    tasks = set(re.findall(r'data-task="([^"]+)"', page))
    return page, tasks, re.findall(r'data-group="([^"]+)"', page)


def test_the_workflow_view_draws_a_group_a_chord_and_a_chain_sent_from_a_client(
    cluster: Cluster,
) -> None:
    client, app = cluster.client, cluster.app
    add, tsum = app.signature("wtasks.add"), app.signature("wtasks.tsum")
    grouped = group(add.clone((i, i)) for i in range(3)).apply_async()
    joined = chord([add.clone((i, 1)) for i in range(3)], tsum).apply_async()
    chained = chain(add.clone((1, 1)), add.clone((2,)), add.clone((3,))).apply_async()
    header = [r.id for r in joined.parent.results]
    steps = [chained.parent.parent.id, chained.parent.id, chained.id]
    for task_id in [r.id for r in grouped.results] + header + [joined.id] + steps:
        cluster.wait_state(task_id, states.SUCCESS)
    # every member of the group, from any member's page: under one node for the group
    for member in grouped.results:
        page, tasks, groups = _workflow(client, member.id)
        assert tasks == {r.id for r in grouped.results} and groups == [grouped.id]
        assert page.count('class="edge"') == 3 and "group of 3" in page
    assert 'id="workflow-link"' in client.get(f"/task/{grouped.results[0].id}").text
    # the chord: its group's node, the header tasks, then the body after all of them
    for task_id in (header[0], joined.id):
        page, tasks, groups = _workflow(client, task_id)
        assert tasks == {*header, joined.id} and groups == [joined.parent.id]
        assert page.count('class="edge"') == 6 and "chord of 3" in page
        assert page.count('data-state="SUCCESS"') == 5  # the group's node too
    # the chain: one row, each step sent by the worker under the one before
    page, tasks, groups = _workflow(client, chained.id)
    assert tasks == set(steps) and not groups and page.count('class="edge"') == 2
    # the API's documents stay Flower's: no `group` key
    assert "group" not in client.get(f"/api/task/info/{header[0]}").json()


def test_schedules_page_pauses_resumes_and_runs_now(cluster: Cluster) -> None:
    client = cluster.client
    store = store_for(cluster.app)
    assert store is not None
    store.add("hourly-sum", "wtasks.add", 3600.0, args=(1, 2))
    store.close()
    page = client.get("/schedules").text
    assert 'data-entry="hourly-sum"' in page and "active" in page and "Pause" in page
    paused = client.post("/api/schedule/pause/hourly-sum")
    assert paused.json() == {"message": "hourly-sum: paused"}
    assert "Resume" in client.get("/schedules").text
    assert client.post("/api/schedule/resume/hourly-sum").status_code == 200
    now = client.post("/api/schedule/run-now/hourly-sum").json()
    assert now == {"message": "hourly-sum: sent at beat's next tick"}
    assert "run asked" in client.get("/schedules").text
    unknown = client.post("/api/schedule/pause/nope")
    assert unknown.status_code == 404 and "hourly-sum" in unknown.json()["error"]


def test_dead_letters_page_lists_inspects_and_replays(cluster: Cluster) -> None:
    client = cluster.client
    bad = cluster.app.send_task("wtasks.fail", (99,))
    cluster.wait_state(bad.id, states.FAILURE)
    page = wait_until(
        lambda: (text := client.get("/dead").text) and f'data-task="{bad.id}"' in text and text,
        "the dead letter on the page",
    )
    assert "celery.dead" in page and "ValueError" in page and "boom 99" in page
    assert "Traceback" in page and "(99,)" in page
    replayed = client.post("/api/dead/replay/celery.dead", data={"id": bad.id})
    assert replayed.json() == {"message": "Replayed 1 message from celery.dead"}
    missing = client.post("/api/dead/replay/celery.dead", data={"id": "no-such-id"})
    assert missing.status_code == 404
    assert client.post("/api/dead/replay/celery").status_code == 404  # not a dead queue


def test_pages_show_workers_tasks_and_the_broker(cluster: Cluster) -> None:
    client, node = cluster.client, cluster.node
    done = cluster.app.send_task("wtasks.add", (40, 2))
    cluster.wait_state(done.id, states.SUCCESS)
    dashboard = client.get("/").text
    assert node in dashboard and "online" in dashboard and "threads" in dashboard.lower()
    tasks = client.get("/tasks", params={"taskname": "wtasks.add"}).text
    assert done.id in tasks and "(40, 2)" in tasks
    page = client.get(f"/task/{done.id}").text
    assert "Timeline" in page and "SUCCESS" in page and "RECEIVED" in page
    fragment = client.get(f"/task/{done.id}", headers={"X-Fragment": "1"}).text
    assert "<html" not in fragment and done.id in fragment
    worker = client.get(f"/worker/{node}").text
    assert "wtasks.add" in worker and "Grow" in worker and "Shut down" in worker
    for table, shown in (("queues", "<td>celery</td>"), ("conf", "<th>broker_url</th>"),
                         ("stats", "<th>pid</th>")):  # fmt: skip
        found = re.search(rf'id="{table}">(.*?)</table>', worker, re.S)
        assert found is not None and shown in found[1], table
    assert "celery" in client.get("/broker").text
    charts = wait_until(
        lambda: (text := client.get("/charts").text) and 'data-series="celery"' in text and text,
        "a queue-length sample on the charts page",
    )
    assert 'data-series="task-succeeded"' in charts
    assert 'figure class="histogram" data-task="wtasks.add"' in charts
    assert client.get("/task/unknown-id").status_code == 404
    assert client.get("/worker/nobody@nowhere").status_code == 404
