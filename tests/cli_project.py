"""A throwaway project directory for command-line tests: its modules import as ``-A`` names.

The directory becomes the working directory and the head of ``sys.path``; apps the command
line makes do not stay the process's current app; the project's modules are closed and
forgotten afterwards, so the next test imports its own.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.utils import current


@contextmanager
def cli_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: Mapping[str, str]
) -> Iterator[Path]:
    """``modules``: file name -> source (dedented) written into ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for filename, source in modules.items():
        (tmp_path / filename).write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    monkeypatch.setattr(current, "_apps", dict(current._apps))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            app = getattr(sys.modules[name], "app", None)
            if isinstance(app, Celery):
                app.close()
            del sys.modules[name]
