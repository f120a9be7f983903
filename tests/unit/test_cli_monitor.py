"""``celeriac monitor`` / ``celeriac flower``: options, refusals, the missing extra, and one
real start over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from celeriac.cli.main import celeriac
from celeriac.web import server
from tests.integration.conftest import REPO, wait_until
from tests.web_server import free_port


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("name", ["monitor", "flower"])
def test_help_lists_the_monitor_options(runner: CliRunner, name: str) -> None:
    text = runner.invoke(celeriac, [name, "--help"]).output
    for option in ("--port", "--address", "--basic-auth", "--auth-token", "--read-only",
                   "--db", "--max-tasks"):  # fmt: skip
        assert option in text, option


def test_refuses_to_listen_off_loopback_without_authentication(runner: CliRunner) -> None:
    result = runner.invoke(celeriac, ["-b", "memory://m", "monitor", "--address", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--basic-auth user:password" in result.stderr and "--auth-token" in result.stderr
    result = runner.invoke(celeriac, ["-b", "memory://m", "flower", "--basic-auth", "ann"])
    assert result.exit_code == 2 and "expected user:password" in result.stderr


def test_the_options_reach_the_server(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda app, access, **kw: seen.update(kw, access=access))
    command = ["-b", "memory://m", "monitor", "--address", "0.0.0.0", "--port", "5601",
               "--basic-auth", "ann:pw1", "--basic-auth", "bob:pw2", "--auth-token", "t0k",
               "--read-only", "--db", "h.sqlite", "--max-tasks", "5000"]  # fmt: skip
    result = runner.invoke(celeriac, command)
    assert result.exit_code == 0, result.output
    access = seen.pop("access")
    assert access.basic_auth == (("ann", "pw1"), ("bob", "pw2"))
    assert access.auth_token == "t0k" and access.read_only
    assert seen["address"] == "0.0.0.0" and seen["port"] == 5601
    assert seen["db"] == "h.sqlite" and seen["max_tasks"] == 5000
    refused = runner.invoke(celeriac, ["-b", "memory://m", "monitor", "--max-tasks", "0"])
    assert refused.exit_code == 2 and "--max-tasks" in refused.output


def test_without_the_extra_the_command_says_what_to_install(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith("celeriac.web")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [m for m in sys.modules if m.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "starlette", None)
    result = runner.invoke(celeriac, ["-b", "memory://m", "monitor"])
    assert result.exit_code == 2
    assert "pip install 'celeriac[monitor]'" in result.stderr


def test_importing_celeriac_and_its_cli_needs_no_web_stack() -> None:
    code = (
        "import sys, celeriac, celeriac.cli.main\n"
        "web = {'starlette', 'uvicorn', 'jinja2', 'celeriac.web'} & set(sys.modules)\n"
        "assert not web, web\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.slow
def test_the_command_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "monitor.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "celeriac", "-b", f"sqlite:///{tmp_path}/b.sqlite",
               "flower", "--port", str(port), "--db", str(tmp_path / "history.sqlite")]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/healthcheck").text == "OK"
            except httpx.TransportError:
                return False

        wait_until(up, "the monitor to answer")
        assert f"celeriac monitor: {url}/" in log.read_text()
        assert httpx.get(f"{url}/api/tasks").json() == {}
        assert "No worker seen yet" in httpx.get(f"{url}/").text
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0, log.read_text()
    assert (tmp_path / "history.sqlite").exists()
