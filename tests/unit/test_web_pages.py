"""The monitor's pages over real HTTP (uvicorn on loopback), fed with events by hand: the task
list's server-side pages, filters and search, the dashboard's counters, a task's retries and
its group / chord links, and the controls: each confirmed, each carrying the CSRF token, each
POST route guarded, none with --read-only; no password on any page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from celeriac import Celery
from celeriac.beat.store_backends import store_for
from celeriac.execution.context import Context
from celeriac.extras import deadletter
from celeriac.protocol.message import TaskCall
from celeriac.web.monitor import Monitor
from celeriac.web.security import CSRF_COOKIE, CSRF_FIELD, Access
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore
from tests.web_server import serving

#: 2027-01-15 08:00:00 UTC; task n is received n minutes later.
BASE = 1_800_000_000.0
WORKER = "w1@h"
OTHER = "w2@h"


def uuid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-{n:012d}"


def finished(n: int, *, name: str, worker: str, failed: bool) -> list[dict[str, Any]]:
    at = BASE + 60 * n
    common = {"uuid": uuid(n), "hostname": worker, "local_received": at}
    end: dict[str, Any] = (
        {"type": "task-failed", "exception": "ValueError()", "traceback": "Traceback..."}
        if failed
        else {"type": "task-succeeded", "result": str(n), "runtime": 0.01}
    )
    return [
        {
            "type": "task-received",
            "timestamp": at,
            "name": name,
            "args": f"({n}, 'order-{n}')",
            "kwargs": "{}",
            "retries": 0,
            "root_id": uuid(n),
            **common,
        },
        {"type": "task-started", "timestamp": at + 0.5, **common},
        {**end, "timestamp": at + 1.0, **common},
    ]


@dataclass
class Site:
    app: Celery
    monitor: Monitor
    url: str


def make_monitor(app: Celery) -> Monitor:
    monitor = Monitor(app, TaskStore())
    now = time.time()
    for host in (WORKER, OTHER):
        monitor.on_event(
            {
                "type": "worker-online",
                "hostname": host,
                "timestamp": now,
                "local_received": now,
                "freq": 60.0,
                "active": 0,
            }
        )
        monitor.inspected[host] = {
            "stats": {"pid": 42, "pool": {"implementation": "threads", "max-concurrency": 2}},
            "registered": ["t.add", "t.mul"],
            "active_queues": [{"name": "celery", "routing_key": "celery"}],
            "conf": {"broker_url": "memory://ann:**@localhost/web-pages"},
        }
    for n in range(120):
        name = "t.add" if n % 2 else "t.mul"
        for event in finished(n, name=name, worker=WORKER if n % 3 else OTHER, failed=n % 4 == 0):
            monitor.on_event(event)
    return monitor


@pytest.fixture
def site() -> Iterator[Site]:
    app = Celery("t", broker="memory://ann:s3cret@localhost/web-pages")
    app.conf.task_dead_letter_queue = "{queue}.dead"
    app.conf.beat_schedule_store = True  # memory:// keeps it in this process
    store = store_for(app)
    assert store is not None
    store.add("hourly", "t.add", 3600.0, args=(1, 2))
    store.add("paused-one", "t.add", 60.0)
    store.pause("paused-one")
    store.close()
    deadletter.send_to_dead_letter(
        app,
        TaskCall(name="t.add", id="dead-0001", args=(9, 9)),
        Context(delivery_info={"routing_key": "celery"}, hostname=WORKER),
        reason="failed",
        exc=ValueError("nope"),
        traceback="Traceback (most recent call last): ...",
    )
    monitor = make_monitor(app)
    try:
        yield Site(app, monitor, "")
    finally:
        monitor.store.close()
        app.close()


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-task="([^"]+)"', page)


def test_the_task_list_pages_filters_and_searches_on_the_server(site: Site) -> None:
    with serving(create_app(site.monitor)) as url, httpx.Client(base_url=url) as client:
        first = client.get("/tasks").text
        assert "120 found" in first and "page 1 of 3" in first
        assert rows(first) == [uuid(n) for n in range(119, 69, -1)]  # newest first, 50
        assert 'href="/tasks?page=2" rel="next"' in first and 'rel="prev"' not in first
        last = client.get("/tasks", params={"page": 3}).text
        assert rows(last) == [uuid(n) for n in range(19, -1, -1)] and 'rel="next"' not in last

        failed = client.get("/tasks", params={"state": "FAILURE"}).text
        assert "30 found" in failed and all(int(u[:8]) % 4 == 0 for u in rows(failed))
        named = client.get("/tasks", params={"taskname": "t.mul", "page": 2}).text
        assert "60 found" in named and "page 2 of 2" in named
        assert rows(named) == [uuid(n) for n in range(18, -1, -2)]
        by_worker = client.get("/tasks", params={"workername": OTHER}).text
        assert "40 found" in by_worker and all(int(u[:8]) % 3 == 0 for u in rows(by_worker))
        # a filtered list keeps its filters from page to page
        two = client.get("/tasks", params={"state": "SUCCESS", "page": 1}).text
        assert 'href="/tasks?state=SUCCESS&amp;page=2"' in two

        # received from 08:10 to 08:20 (UTC), both included as in Flower: tasks 10 to 20
        window = {"received_start": "2027-01-15 08:10", "received_end": "2027-01-15 08:20"}
        ranged = client.get("/tasks", params=window).text
        assert rows(ranged) == [uuid(n) for n in range(20, 9, -1)]
        assert 'value="2027-01-15 08:10"' in ranged  # the form shows the filter in force
        bad = client.get("/tasks", params={"received_start": "yesterday"})
        assert bad.status_code == 400 and "received_start must be" in bad.text

        assert rows(client.get("/tasks", params={"search": uuid(42)[:8]}).text) == [uuid(42)]
        assert rows(client.get("/tasks", params={"search": uuid(42)}).text) == [uuid(42)]
        in_args = client.get("/tasks", params={"search": "order-77'"}).text
        assert rows(in_args) == [uuid(77)] and "(77, &#39;order-77&#39;)" in in_args
        flowers = {"search": "state:failure name:T.MUL (args:order-1 OR worker:nobody)"}
        assert rows(client.get("/tasks", params=flowers).text) == [
            uuid(n) for n in (116, 112, 108, 104, 100, 16, 12)
        ]
        unclosed = client.get("/tasks", params={"search": "(args:order"})
        assert unclosed.status_code == 400
        assert "search: a parenthesis is not closed at position 0" in unclosed.text
        api = client.get("/api/tasks", params={"search": "args:abc AND"})
        assert api.status_code == 400
        assert api.json() == {"error": "search: AND must be followed by a term at position 9"}
        combined = {"search": "order-1", "state": "FAILURE", "taskname": "t.mul"}
        expected = [116, 112, 108, 104, 100, 16, 12]  # 'order-1...', failed, even
        assert rows(client.get("/tasks", params=combined).text) == [uuid(n) for n in expected]


def page_after_a_retried_task(site: Site, path: str) -> str:
    """The page at ``path`` once the monitor has seen ``retried_then_succeeded('r-1')``."""
    for event in retried_then_succeeded("r-1", WORKER):
        site.monitor.on_event(event)
    with serving(create_app(site.monitor)) as url:
        return httpx.get(f"{url}{path}").text


def test_the_dashboard_counts_each_workers_tasks(site: Site) -> None:
    page = page_after_a_retried_task(site, "/")
    row = re.search(rf'<tr data-worker="{WORKER}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row[1])]
    # worker, status, pool, concurrency, active, processed, succeeded, failed, retried
    assert cells[:9] == [WORKER, "online", "threads", "2", "0", "82", "61", "20", "1"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", cells[10])  # last heartbeat


def retried_then_succeeded(task_id: str, worker: str) -> list[dict[str, Any]]:
    at = BASE + 10_000
    common = {"uuid": task_id, "hostname": worker}
    received = {"type": "task-received", "name": "t.add", "args": "(1,)", "kwargs": "{}", **common}
    return [
        {**received, "retries": 0, "timestamp": at, "local_received": at},
        {"type": "task-started", "timestamp": at + 1, "local_received": at + 1, **common},
        {
            "type": "task-retried",
            "exception": "ConnectionError('try again')",
            "traceback": "Traceback",
            "timestamp": at + 2,
            "local_received": at + 2,
            **common,
        },
        {**received, "retries": 1, "timestamp": at + 5, "local_received": at + 5},
        {"type": "task-started", "timestamp": at + 6, "local_received": at + 6, **common},
        {
            "type": "task-succeeded",
            "result": "1",
            "runtime": 0.25,
            "timestamp": at + 6.25,
            "local_received": at + 6.25,
            **common,
        },
    ]


def test_a_task_page_shows_its_retries_and_timeline(site: Site) -> None:
    page = page_after_a_retried_task(site, "/task/r-1")
    timeline = re.search(r'<table class="grid" id="timeline">(.*?)</table>', page, re.S)
    assert timeline is not None
    steps = re.findall(r'<span class="badge (\w+)">', timeline[1])
    assert steps == ["RECEIVED", "STARTED", "RETRY", "RECEIVED", "STARTED", "SUCCESS"]
    assert "2027-01-15 10:46:40.000" in timeline[1]  # BASE + 10,000 s, UTC
    assert "6.250 s" in timeline[1]  # the success, after the first event
    assert re.search(r"<th>Retries</th><td>1</td>", page)
    assert re.search(r"<th>Runtime</th><td>250.0 ms</td>", page)


def group_member(
    task_id: str, group: str, index: int | None, at: float, **extra: Any
) -> list[dict[str, Any]]:
    common = {"uuid": task_id, "hostname": WORKER, "local_received": at}
    fields = {"group": group, **({"group_index": index} if index is not None else {})}
    return [
        {
            "type": "task-received",
            "timestamp": at,
            "name": "t.add",
            "args": "()",
            "kwargs": "{}",
            "root_id": extra.get("root_id", task_id),
            "parent_id": extra.get("parent_id"),
            **fields,
            **common,
        },
        {"type": "task-succeeded", "timestamp": at + 1, "result": "1", "runtime": 0.1, **common},
    ]


def test_a_task_page_links_its_group_and_its_chords_callback(site: Site) -> None:
    events = [
        *group_member("head-b", "g-1", 1, BASE + 20_001),
        *group_member("head-a", "g-1", 0, BASE + 20_002),
        *group_member("callback", "g-1", None, BASE + 20_003, root_id="head-b", parent_id="head-b"),
        *group_member("alone", "g-2", 0, BASE + 20_004),
    ]
    for event in events:
        site.monitor.on_event(event)
    with serving(create_app(site.monitor)) as url, httpx.Client(base_url=url) as client:
        head = client.get("/task/head-b").text
        assert "<code>g-1</code>: task 2 of a chord of 2" in head
        members = re.search(r'<ol class="members">(.*?)</ol>', head, re.S)
        assert members is not None
        assert re.findall(r'href="/task/([^"]+)"', members[1]) == ["head-a", "head-b"]
        assert re.search(r'id="chord"><a href="/task/callback"', head)
        assert 'id="workflow-link"' in head
        callback = client.get("/task/callback").text
        assert "the callback of a chord of 2" in callback and 'id="chord"' not in callback
        alone = client.get("/task/alone").text
        assert "task 1 of a group of 1" in alone and 'id="chord"' not in alone
        plain = client.get(f"/task/{uuid(5)}").text  # a Celery worker's task: no group
        assert 'id="group"' not in plain


class Forms(HTMLParser):
    """Every ``<form>`` of a page: its attributes and its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append({**dict(attrs), "inputs": {}})
        elif tag == "input" and self.forms:
            fields = dict(attrs)
            self.forms[-1]["inputs"][fields.get("name")] = fields.get("value")


def forms(page: str) -> list[dict[str, Any]]:
    parser = Forms()
    parser.feed(page)
    return parser.forms


#: Pages with controls; a waiting task so that its page offers revoke and terminate.
PAGES = (
    "/",
    "/tasks",
    "/task/waiting-1",
    f"/worker/{WORKER}",
    "/schedules",
    "/dead",
    "/broker",
    "/charts",
    "/workflow/waiting-1",
)


def waiting(monitor: Monitor) -> None:
    monitor.on_event(
        {
            "type": "task-sent",
            "uuid": "waiting-1",
            "name": "t.add",
            "args": "()",
            "kwargs": "{}",
            "hostname": "gen1@client",
            "timestamp": BASE,
            "local_received": BASE,
        }
    )


def test_every_control_asks_for_confirmation_and_carries_the_csrf_token(site: Site) -> None:
    waiting(site.monitor)
    actions: set[str] = set()
    with serving(create_app(site.monitor)) as url, httpx.Client(base_url=url) as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, path
            token = client.cookies[CSRF_COOKIE]
            for form in forms(response.text):
                if form.get("method") != "post":
                    assert form.get("method") == "get", (path, form)
                    continue
                assert form.get("class") == "control", (path, form)
                assert "?" in (form.get("data-confirm") or ""), (path, form)
                assert form["inputs"].get(CSRF_FIELD) == token, (path, form)
                actions.add(re.sub(r"/[^/]+$", "/<x>", form["action"]))
    assert actions == {
        "/api/task/revoke/<x>",
        "/api/task/rate-limit/<x>",
        "/api/task/timeout/<x>",
        "/api/worker/pool/grow/<x>",
        "/api/worker/pool/shrink/<x>",
        "/api/worker/pool/autoscale/<x>",
        "/api/worker/queue/add-consumer/<x>",
        "/api/worker/queue/cancel-consumer/<x>",
        "/api/worker/shutdown/<x>",
        "/api/schedule/pause/<x>",
        "/api/schedule/resume/<x>",
        "/api/schedule/run-now/<x>",
        "/api/dead/replay/<x>",
    }


def post_routes(app: Any) -> list[str]:
    """Every POST path of the monitor, its parameters filled in."""
    paths = [
        re.sub(r"\{[^}]+\}", "x", route.path)
        for route in app.routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
    ]
    assert sorted(paths) == [  # Flower's controls, then the schedules' and dead letters'
        "/api/dead/replay/x",
        "/api/schedule/pause/x",
        "/api/schedule/resume/x",
        "/api/schedule/run-now/x",
        "/api/task/async-apply/x",
        "/api/task/rate-limit/x",
        "/api/task/revoke/x",
        "/api/task/send-task/x",
        "/api/task/timeout/x",
        "/api/worker/pool/autoscale/x",
        "/api/worker/pool/grow/x",
        "/api/worker/pool/shrink/x",
        "/api/worker/queue/add-consumer/x",
        "/api/worker/queue/cancel-consumer/x",
        "/api/worker/shutdown/x",
    ]
    return paths


def test_every_post_route_refuses_a_browser_without_the_pages_token(site: Site) -> None:
    web = create_app(site.monitor)
    with serving(web) as url, httpx.Client(base_url=url) as client:
        client.get("/")
        for path in post_routes(web):
            for headers in (
                {"Origin": "http://evil.example"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Origin": url, "X-CSRF-Token": "a-guess"},
            ):
                refused = client.post(path, headers=headers, data={"n": "1"})
                assert refused.status_code == 403, (path, headers)
                assert "X-CSRF-Token" in refused.json()["error"], path


def test_read_only_draws_no_control_and_refuses_every_post_naming_the_option(
    site: Site,
) -> None:
    waiting(site.monitor)
    web = create_app(site.monitor, Access(read_only=True))
    with serving(web) as url, httpx.Client(base_url=url) as client:
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200, path
            assert not [f for f in forms(page.text) if f.get("method") == "post"], path
            assert 'class="control"' not in page.text, path
        assert "order-119" in client.get("/tasks").text  # everything is still shown
        assert "hourly" in client.get("/schedules").text
        assert "dead-0001" in client.get("/dead").text
        for path in post_routes(web):
            refused = client.post(path, data={"n": "1"})
            assert refused.status_code == 403, path
            assert "--read-only" in refused.json()["error"], path


class Inspector:
    """Stands in for ``app.control.inspect``: a worker that answers with its secrets."""

    ANSWERS: dict[str, Any] = {
        "stats": {"pid": 1, "broker": {"hostname": "db", "password": "s3cret"}},
        "conf": {
            "broker_url": "redis://:s3cret@db:6379/0",
            "result_backend": "db+postgresql://app:s3cret@db/results",
            "broker_transport_options": {"sentinel_kwargs": {"password": "s3cret"}},
        },
        "active_queues": [],
        "registered": ["t.add"],
    }

    def __getattr__(self, method: str) -> Any:
        return lambda: {WORKER: self.ANSWERS.get(method, [])}


def test_no_page_or_answer_shows_a_password(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.monitor.inspected.pop(WORKER)
    monkeypatch.setattr(type(site.app.control), "inspect", lambda *a, **k: Inspector())
    with serving(create_app(site.monitor)) as url, httpx.Client(base_url=url) as client:
        worker = client.get(f"/worker/{WORKER}").text
        assert "redis://:**@db:6379/0" in worker  # the URL is there, its password is not
        shown = [
            worker,
            client.get("/api/workers", params={"refresh": 1}).text,
            client.get("/broker").text,
        ]
    assert "memory://ann:**@localhost/web-pages" in shown[2]
    for text in shown:
        assert "s3cret" not in text
