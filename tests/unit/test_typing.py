"""``Task`` is generic over its parameters and return type: mypy proves it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent / "type_tests"


@pytest.fixture(scope="module")
def mypy_output() -> str:
    """What one ``mypy --strict`` run over both type-test files printed (one start-up of
    mypy, which costs seconds, serves both tests)."""
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            str(HERE / "ok_delay.py"),
            str(HERE / "fail_delay.py"),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    return proc.stdout


def _lines_of(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if Path(line.split(":")[0]).name == name]


@pytest.mark.timeout(180)
def test_delay_returns_typed_async_result(mypy_output: str) -> None:
    lines = _lines_of(mypy_output, "ok_delay.py")
    assert not [line for line in lines if ": error:" in line], mypy_output
    assert any(
        re.search(r'Revealed type is "celeriac\.result\.AsyncResult\[(builtins\.)?int\]"', line)
        for line in lines
    ), mypy_output


@pytest.mark.timeout(180)
def test_wrong_arguments_fail_type_check(mypy_output: str) -> None:
    errors = [line for line in _lines_of(mypy_output, "fail_delay.py") if ": error:" in line]
    lines = {int(line.split(":")[1]) for line in errors}
    source = (HERE / "fail_delay.py").read_text().splitlines()
    expected = {n for n, text in enumerate(source, 1) if "# E:" in text}
    assert expected and lines == expected, mypy_output
