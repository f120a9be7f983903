"""``Task`` is generic over its parameters and return type: mypy proves it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent / "type_tests"


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(180)
def test_delay_returns_typed_async_result() -> None:
    proc = _mypy(HERE / "ok_delay.py")
    assert proc.returncode == 0, proc.stdout
    assert re.search(
        r'Revealed type is "celeriac\.result\.AsyncResult\[(builtins\.)?int\]"', proc.stdout
    ), proc.stdout


@pytest.mark.timeout(180)
def test_wrong_arguments_fail_type_check() -> None:
    proc = _mypy(HERE / "fail_delay.py")
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    lines = {int(line.split(":")[1]) for line in errors}
    source = (HERE / "fail_delay.py").read_text().splitlines()
    expected = {n for n, text in enumerate(source, 1) if "# E:" in text}
    assert lines == expected, proc.stdout
