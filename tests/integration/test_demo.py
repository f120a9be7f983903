"""``scripts/demo``, the README's first command: the tutorial's calls as a user sees them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow


def _answer(output: str, line: str) -> str:
    """What the session printed after ``>>> line`` (up to the next prompt)."""
    match = re.search(rf"^>>> {re.escape(line)}\n(.*?)(?=^>>> |^== )", output, re.M | re.S)
    assert match, f"{line!r} not in the demo's session:\n{output}"
    return match.group(1).strip()


def test_demo_runs_the_seed_calls_on_the_embedded_default() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    assert _answer(output, "r.get(timeout=1)") == "3"
    assert _answer(output, "mult.delay(3, 7).get(timeout=1)") == "21"
    assert _answer(output, "f.get(timeout=1, propagate=False)") == (
        "ZeroDivisionError('division by zero')"
    )
    assert _answer(output, "f.failed()") == "True"
    traceback = _answer(output, "print(f.traceback)")
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.endswith("ZeroDivisionError: division by zero")
    assert _answer(output, "r.state") == "'PENDING'"  # after r.forget()
    assert "transport:   sqlite:///celeriac-broker.sqlite" in output
    assert "worker stopped cleanly" in output
    folder = re.search(r"\(in (\S+): no broker configured", output)
    assert folder, output
    assert not Path(folder.group(1)).exists(), "the demo left its temporary folder behind"
