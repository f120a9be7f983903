"""Who may see and act through the monitor: the loopback rule, basic and bearer
authentication, --read-only and CSRF, over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from celeriac import Celery
from celeriac.web.monitor import Monitor
from celeriac.web.security import (
    CSRF_COOKIE,
    Access,
    check_exposure,
    parse_basic_auth,
)
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore
from tests.web_server import serving

TASK = "7f1d7c52-0000-4000-8000-000000000001"


@contextmanager
def monitor_at(access: Access) -> Iterator[str]:
    app = Celery("t", broker="memory://web-security")
    monitor = Monitor(app, TaskStore())
    monitor.on_event({"type": "task-received", "uuid": TASK, "hostname": "w1@h",
                      "timestamp": 1.0, "local_received": 1.0, "name": "t.add",
                      "args": "(1, 2)", "kwargs": "{}"})  # fmt: skip
    try:
        with serving(create_app(monitor, access)) as url:
            yield url
    finally:
        monitor.store.close()
        app.close()


def test_off_loopback_needs_authentication() -> None:
    check_exposure("127.0.0.1", Access())
    check_exposure("::1", Access())
    check_exposure("localhost", Access())
    with pytest.raises(ValueError, match="--basic-auth user:password") as refused:
        check_exposure("0.0.0.0", Access())
    assert "--auth-token" in str(refused.value)
    check_exposure("0.0.0.0", Access(auth_token="t0ken"))
    check_exposure("10.1.2.3", Access(basic_auth=(("ann", "pw"),)))
    with pytest.raises(ValueError, match="--basic-auth 'ann': expected user:password"):
        parse_basic_auth(["ann"])


def test_several_users_in_one_option_as_for_flower() -> None:
    # Flower's --basic-auth=user1:password1,user2:password2 (a Tornado list option)
    assert parse_basic_auth(["ann:pw1,bob:pw2", "cy:p:w3"]) == (
        ("ann", "pw1"),
        ("bob", "pw2"),
        ("cy", "p:w3"),
    )
    with pytest.raises(ValueError, match="--basic-auth 'bob': expected user:password"):
        parse_basic_auth(["ann:pw1,bob"])


def test_basic_auth_and_bearer_token() -> None:
    access = Access(basic_auth=(("ann", "pw1"), ("bob", "pw2")), auth_token="t0ken")
    with monitor_at(access) as url:
        refused = httpx.get(f"{url}/api/tasks")
        assert refused.status_code == 401
        assert "--basic-auth" in refused.json()["error"] and "WWW-Authenticate" in refused.headers
        assert httpx.get(f"{url}/api/tasks", auth=("ann", "wrong")).status_code == 401
        assert TASK in httpx.get(f"{url}/api/tasks", auth=("bob", "pw2")).json()
        bearer = {"Authorization": "Bearer t0ken"}
        assert httpx.get(f"{url}/metrics", headers=bearer).status_code == 200
        assert httpx.get(f"{url}/", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{url}/healthcheck").text == "OK"


def test_read_only_hides_and_refuses_controls() -> None:
    with monitor_at(Access(read_only=True)) as url:
        page = httpx.get(f"{url}/task/{TASK}").text
        assert "(1, 2)" in page and "Revoke" not in page
        refused = httpx.post(f"{url}/api/task/revoke/{TASK}", data={"terminate": "false"})
        assert refused.status_code == 403 and "--read-only" in refused.json()["error"]


def test_a_browser_post_needs_the_pages_csrf_token() -> None:
    with monitor_at(Access()) as url, httpx.Client(base_url=url) as client:
        page = client.get(f"/task/{TASK}")
        assert "Revoke" in page.text
        token = client.cookies[CSRF_COOKIE]
        assert f'content="{token}"' in page.text
        browser = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        forged = client.post(f"/api/task/revoke/{TASK}", headers=browser, data={})
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
        wrong = client.post(
            f"/api/task/revoke/{TASK}", headers={**browser, "X-CSRF-Token": "guess"}
        )
        assert wrong.status_code == 403
        same_site = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
        with_header = client.post(
            f"/api/task/revoke/{TASK}", headers={**same_site, "X-CSRF-Token": token}
        )
        assert with_header.json() == {"message": f"Revoked '{TASK}'"}
        with_field = client.post(
            f"/api/task/revoke/{TASK}", headers=same_site, data={"csrf_token": token}
        )
        assert with_field.status_code == 200
    # A script (no Origin, no Sec-Fetch-Site, no cookie) posts as to Flower.
    with monitor_at(Access()) as url:
        assert httpx.post(f"{url}/api/task/revoke/{TASK}").status_code == 200
