"""The docs cannot drift from the code.

- Every ```python block in docs/**/*.md and README.md compiles. A block whose first line starts
  with ``>>>`` is an interactive session: it is not compiled, and the tutorial's sessions are
  run instead (below). A block preceded by the line ``<!-- fragment -->`` is skipped.
- The tutorial (docs/tutorial.md, the canvas page and the README's short one) runs against a
  real worker: its ``tasks.py`` block is written to a temporary folder, ``celeriac -A tasks
  worker`` starts there on the embedded SQLite default, and its sessions run as doctests.
- The settings table in docs/settings.md is the one ``scripts/settings-table`` writes.
- The README starts with the two set-up commands and stays short.
- The module map in docs/architecture.md names every module of ``celeriac/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from celeriac.cli.settings_table import BEGIN, END, block
from tests.integration.conftest import DEADLINE, WorkerProcess

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]

FRAGMENT = "<!-- fragment -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")


@dataclass(frozen=True)
class CodeBlock:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    fragment: bool

    @property
    def is_session(self) -> bool:
        return self.code.lstrip().startswith(">>>")

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def code_blocks(page: Path) -> list[CodeBlock]:
    """The fenced code blocks of a markdown page (indented fences included, dedented)."""
    lines = page.read_text().splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        fragment = start > 0 and lines[start - 1].strip() == FRAGMENT
        code = "\n".join(body) + "\n"
        blocks.append(CodeBlock(page, start + 1, opening["lang"], code, fragment))
        i += 1
    return blocks


PYTHON_BLOCKS = [b for page in PAGES for b in code_blocks(page) if b.lang == "python"]


def test_pages_have_python_blocks() -> None:
    assert len(PYTHON_BLOCKS) > 20, "the block parser found too few ```python blocks"


@pytest.mark.parametrize(
    "code_block", [b for b in PYTHON_BLOCKS if not b.is_session and not b.fragment], ids=str
)
def test_python_block_compiles(code_block: CodeBlock) -> None:
    compile(code_block.code, str(code_block), "exec")


def test_fragments_stay_rare() -> None:
    fragments = [str(b) for b in PYTHON_BLOCKS if b.fragment]
    assert len(fragments) <= 3, f"too many <!-- fragment --> blocks: {fragments}"


# -- the tutorial against a real worker ---------------------------------------------------


class TutorialWorker(WorkerProcess):
    """``celeriac -A tasks worker -l info`` in ``directory``, nothing configured: the embedded
    SQLite default, as a user runs it (output in a log file, stopped by the test)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        script = Path(sys.executable).with_name("celeriac")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "celeriac"]
        command += ["-A", "tasks", "worker", "--loglevel=info"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT
            )


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [DOCS / "tutorial.md", DOCS / "canvas.md", README], ids=lambda p: p.name
)
def test_tutorial_runs_against_a_real_worker(page: Path, tmp_path: Path) -> None:
    blocks = [b for b in code_blocks(page) if b.lang == "python"]
    modules = [b for b in blocks if not b.is_session]
    sessions = [b for b in blocks if b.is_session]
    assert modules and "app = Celery(" in modules[0].code, f"{page.name}: no tasks.py block"
    assert sessions, f"{page.name}: no >>> session"
    (tmp_path / "tasks.py").write_text(modules[0].code)
    # Each session is a doctest; a blank line ends the expected output of its last example.
    (tmp_path / "session.txt").write_text("\n\n".join(s.code for s in sessions))
    worker = TutorialWorker(tmp_path)
    try:
        worker.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        flags = ["-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE"]
        run = subprocess.run(
            [sys.executable, "-m", "doctest", *flags, "session.txt"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
    finally:
        exitcode = worker.stop()
    assert run.returncode == 0, f"{run.stdout}{run.stderr}\n--- worker log:\n{worker.output()}"
    assert exitcode == 0, worker.output()
    assert "Task tasks.add[" in worker.output()


# -- tables and pages that are generated or checked ----------------------------------------


def test_settings_table_is_current() -> None:
    text = (DOCS / "settings.md").read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == block(), "run scripts/settings-table"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("## ", 1)[0]
    assert "scripts/demo" in head and "scripts/test" in head
    assert head.index("scripts/demo") < head.index("scripts/test")


def test_readme_is_short() -> None:
    assert len(README.read_text()) < 8000


def test_readme_links_into_the_docs_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
    assert links
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing


def _module_map() -> list[str]:
    """The lines of the ``celeriac/`` tree block in docs/architecture.md."""
    page = DOCS / "architecture.md"
    return next(b for b in code_blocks(page) if b.code.startswith("celeriac/")).code.splitlines()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _section(lines: list[str], package: str) -> list[str]:
    """The lines under ``<package>/`` in the map (deeper indented than its header)."""
    for i, line in enumerate(lines):
        if line.split()[:1] == [f"{package}/"]:
            depth = _indent(line)
            end = next(
                (j for j in range(i + 1, len(lines)) if _indent(lines[j]) <= depth),
                len(lines),
            )
            return lines[i + 1 : end]
    return []


def test_architecture_names_every_module() -> None:
    lines = _module_map()
    text = "\n".join(lines)
    missing = []
    for path in sorted((REPO / "celeriac").rglob("*.py")):
        rel = path.relative_to(REPO / "celeriac")
        if path.name == "__init__.py" and len(rel.parts) > 1:
            continue
        if len(rel.parts) == 1:
            named = any(re.match(rf"  {re.escape(path.name)}\b", line) for line in lines)
        else:
            section_lines = lines
            for package in rel.parts[:-1]:  # drivers/redis/ is not transports/redis/
                section_lines = _section(section_lines, package)
            section = "\n".join(section_lines)
            named = str(rel) in text or re.search(rf"\b{re.escape(path.name)}\b", section)
        if not named:
            missing.append(str(rel))
    assert not missing, f"add to the module map in docs/architecture.md: {missing}"
