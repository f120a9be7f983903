"""The web monitor in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; no browser download): a worker and a finished task appear without reloading, the
task page shows its timeline, a waiting task is revoked through the page's confirmed
control, and the workflow view draws a chord. Each run saves its screenshots in
build/monitor-screenshots/ at the top of the repository (ignored by git), or in
$CELERIAC_MONITOR_SCREENSHOTS when set (``scripts/monitor-screenshots``: docs/img/monitor/)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from celeriac import chord, states
from celeriac.beat.store_backends import store_for
from celeriac.schedules import crontab
from celeriac.testing import start_worker
from celeriac.web.monitor import Monitor
from celeriac.web.security import Access
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore
from tests.integration.broker_envs import make_env
from tests.integration.conftest import wait_until
from tests.web_server import serving

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIVE = 20_000  # ms: how long a live update may take on a busy machine
#: Where a run leaves its screenshots (unless $CELERIAC_MONITOR_SCREENSHOTS says otherwise).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "monitor-screenshots"
TAKEN = ["charts", "chord-callback", "dashboard", "dead", "revoked", "schedules", "task",
         "tasks", "worker", "workflow"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(150),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def test_the_monitor_in_a_real_browser(tmp_path: Path) -> None:
    shots = Path(os.environ.get("CELERIAC_MONITOR_SCREENSHOTS") or SCREENSHOTS)
    shots.mkdir(parents=True, exist_ok=True)
    started = time.time()
    env = make_env("sqlite", tmp_path)
    app = env.app("shop")
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True
    app.conf.task_dead_letter_queue = "{queue}.dead"
    app.conf.beat_schedule_store = True

    @app.task(name="shop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="shop.charge")
    def charge(order: int) -> None:
        raise ValueError(f"card declined for order {order}")

    @app.task(name="shop.total")
    def total(amounts: list[int]) -> int:
        return sum(amounts)

    @app.task(name="shop.checkout")
    def checkout(items: int) -> None:
        chord([add.s(i, 10) for i in range(items)])(total.s())

    store = TaskStore(str(tmp_path / "monitor.sqlite"))
    monitor = Monitor(app, store, flush_interval=0.05)
    monitor.start()
    expect = playwright.expect
    try:
        with (
            serving(create_app(monitor, Access())) as url,
            playwright.sync_playwright() as driver,
        ):
            browser = driver.chromium.launch(
                executable_path=str(CHROMIUM), args=ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1280, "height": 720})

            def shot(name: str) -> None:
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

            page.goto(f"{url}/")
            expect(page.locator("#workers")).to_contain_text("No worker seen yet")
            expect(page.locator("#live-status")).to_have_class("live-status on", timeout=LIVE)
            page.evaluate("window.celeriacNoReload = 'still this page'")  # a reload drops it
            with start_worker(app, pool="threads", concurrency=2) as worker:
                node = worker.hostname
                row = page.locator(f'tr[data-worker="{node}"]')
                expect(row).to_contain_text("online", timeout=LIVE)  # no reload
                first = add.delay(20, 22)
                expect(page.locator("#counts")).to_contain_text(states.SUCCESS, timeout=LIVE)
                assert first.get(timeout=10) == 42
                assert page.evaluate("window.celeriacNoReload") == "still this page"
                page.goto(f"{url}/tasks")
                page.evaluate("window.celeriacNoReload = 'still this page'")
                done = add.delay(2, 3)
                for order in (17, 18):
                    charge.delay(order)
                expect(page.locator(f'tr[data-task="{done.id}"]')).to_contain_text(
                    "SUCCESS", timeout=LIVE
                )
                expect(page.locator("#tasks")).to_contain_text("FAILURE", timeout=LIVE)
                assert page.evaluate("window.celeriacNoReload") == "still this page"
                shot("tasks")
                page.goto(f"{url}/")
                expect(row).to_contain_text("threads")
                shot("dashboard")

                page.click('a[href="/tasks"]')
                page.click(f'a[href="/task/{done.id}"]')
                expect(page.locator("#timeline")).to_contain_text(states.SUCCESS)
                expect(page.locator("#timeline")).to_contain_text(states.RECEIVED)
                expect(page.locator("#task-state")).to_have_text(states.SUCCESS)
                shot("task")

                # A task waiting in a queue no worker consumes: revoke it from its page.
                waiting = add.apply_async((1, 1), queue="parked")
                wait_until(
                    lambda: (t := monitor.task(waiting.id)) and t.doc["state"] == states.PENDING,
                    "the waiting task in the monitor",
                )
                page.goto(f"{url}/task/{waiting.id}")
                dialogs: list[str] = []

                def accept(dialog: object) -> None:
                    dialogs.append(dialog.message)  # type: ignore[attr-defined]
                    dialog.accept()  # type: ignore[attr-defined]

                page.once("dialog", accept)
                page.click("#revoke")
                expect(page.locator("#flash")).to_contain_text(f"Revoked '{waiting.id}'")
                assert dialogs and "Revoke task" in dialogs[0]
                app.control.add_consumer("parked", destination=[node], reply=True, timeout=5)
                expect(page.locator("#task-state")).to_have_text(states.REVOKED, timeout=LIVE)
                shot("revoked")

                # A chord launched by a task, drawn as it runs.
                basket = checkout.delay(3)
                wait_until(
                    lambda: (t := monitor.task(basket.id)) and t.doc["state"] == states.SUCCESS,
                    "the checkout task",
                )
                page.goto(f"{url}/task/{basket.id}")
                page.click("#workflow-link")
                done = page.locator('#workflow a.node[data-state="SUCCESS"]')
                expect(done).to_have_count(5, timeout=LIVE)  # checkout, 3 x add, total
                expect(page.locator("#workflow")).to_contain_text("shop.total")
                shot("workflow")
                # a header task's page, from its node: its group and the chord's callback
                page.locator('#workflow a.node:has-text("shop.add")').first.click()
                expect(page.locator("#group")).to_contain_text("of a chord of 3")
                expect(page.locator("#group li")).to_have_count(3)
                expect(page.locator("#chord")).to_contain_text("shop.total")
                page.click("#chord a")
                expect(page.locator("#task-state")).to_have_text(states.SUCCESS)
                expect(page.locator("#group")).to_contain_text("the callback of a chord of 3")
                shot("chord-callback")

                page.goto(f"{url}/charts")
                expect(page.locator('figure[data-task="shop.add"]')).to_contain_text("runs")
                shot("charts")

                store = store_for(app)
                assert store is not None
                store.add("nightly-report", "shop.add", crontab(hour=2, minute=30), args=(0, 0))
                store.add("cache-refresh", "shop.add", 300.0, args=(1, 1))
                store.pause("cache-refresh")
                store.close()
                page.goto(f"{url}/schedules")
                expect(page.locator("#schedules")).to_contain_text("nightly-report")
                shot("schedules")
                page.goto(f"{url}/dead")
                expect(page.locator("table.dead")).to_contain_text("card declined")
                page.locator("table.dead details summary").first.click()
                shot("dead")

                page.goto(f"{url}/worker/{node}")
                expect(page.locator("#registered")).to_contain_text("shop.add")
                shot("worker")
            browser.close()
    finally:
        monitor.stop()
        store.close()
        app.close()
        env.cleanup()
    for name in TAKEN:  # each written by this run
        assert (shots / f"{name}.png").stat().st_mtime >= started - 1, name
