"""task_routes and queues resolved as Celery documents it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.routing import Route
from celeriac.exceptions import QueueNotFound
from celeriac.protocol.entities import Exchange, Queue


def _route(app: Celery, name: str = "feed.tasks.import_feed", **options: Any) -> Route:
    return app.router.route(name, (), {}, **options)


def test_default_queue_goes_through_the_default_exchange() -> None:
    app = Celery("t", broker="memory://")
    assert _route(app) == Route("", "celery", Queue("celery"), None)


def test_dict_glob_regex_and_string_values() -> None:
    app = Celery("t", broker="memory://")
    app.conf.task_routes = {
        "feed.tasks.import_feed": "feeds",
        "web.*": {"queue": "web", "priority": 7},
        re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"},
    }
    assert _route(app).routing_key == "feeds"
    assert _route(app, "web.tasks.page") == Route("", "web", Queue("web"), 7)
    assert _route(app, "image.tasks.resize").routing_key == "media"
    assert _route(app, "other").routing_key == "celery"


def test_list_of_pairs_keeps_order_and_first_router_wins() -> None:
    app = Celery("t", broker="memory://")
    app.conf.task_routes = (
        [("feed.tasks.*", {"queue": "feeds"}), ("feed.*", {"queue": "never"})],
        {"feed.tasks.import_feed": "late"},
    )
    assert _route(app).routing_key == "feeds"


def test_router_function_and_class_signatures() -> None:
    seen: list[Any] = []

    def route_task(
        name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> Any:
        seen.append((name, args, kwargs, options, task))
        return {"queue": "hipri"} if name.startswith("urgent") else None

    class Router:
        def route_for_task(self, task: str, *args: Any, **kwargs: Any) -> Any:
            return {"queue": "classy"}

    app = Celery("t", broker="memory://")
    app.conf.task_routes = [route_task, Router()]
    assert app.router.route("urgent.x", (1,), {"a": 2}).routing_key == "hipri"
    assert seen[0] == ("urgent.x", (1,), {"a": 2}, {}, None)
    assert _route(app, "normal").routing_key == "classy"


def test_explicit_options_override_the_route() -> None:
    app = Celery("t", broker="memory://")
    app.conf.task_routes = {"feed.*": {"queue": "feeds", "priority": 3}}
    route = _route(app, queue="misbehaving")
    assert (route.exchange, route.routing_key, route.priority) == ("", "misbehaving", 3)


def test_topic_default_exchange_setup_from_the_docs() -> None:
    app = Celery("t", broker="memory://")
    app.conf.task_default_queue = "default"
    app.conf.task_default_exchange = "tasks"
    app.conf.task_default_exchange_type = "topic"
    app.conf.task_default_routing_key = "task.default"
    app.conf.task_queues = (
        Queue("default", routing_key="task.#"),
        Queue("feed_tasks", routing_key="feed.#"),
    )
    app.conf.task_routes = {
        "feed.tasks.import_feed": {"queue": "feed_tasks", "routing_key": "feed.import"}
    }
    route = _route(app)
    assert (route.exchange, route.routing_key) == ("tasks", "feed.import")
    other = _route(app, "other.task")
    assert (other.exchange, other.routing_key) == ("tasks", "task.#")
    assert app.router.queue("feed_tasks").exchange == Exchange("tasks", "topic")


def test_explicit_exchange_and_routing_key() -> None:
    app = Celery("t", broker="memory://")
    route = _route(app, exchange="media", routing_key="media.video")
    assert (route.exchange, route.routing_key) == ("media", "media.video")


def test_missing_queue_without_create_missing() -> None:
    app = Celery("t", broker="memory://")
    app.conf.task_create_missing_queues = False
    app.conf.task_queues = [Queue("celery")]
    with pytest.raises(QueueNotFound):
        _route(app, queue="nope")


def test_router_priority_reaches_the_message() -> None:
    app = Celery("t", broker="memory://routing-priority", backend="cache+memory://")
    app.conf.task_routes = {"t.add": {"queue": "prio", "priority": 5}}
    app.send_task("t.add")
    with app.connection() as conn:
        (delivery,) = conn.get(["prio"], max_messages=1, timeout=1)
    assert delivery.message.priority == 5
