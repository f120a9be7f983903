"""The README stays current: its settings table is the one in config.py, and it starts with
the two set-up commands."""

from __future__ import annotations

from pathlib import Path

from celeriac.docs_settings import BEGIN, END, block

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_is_current() -> None:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == block(), "run scripts/settings-table"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("## ", 1)[0]
    assert "scripts/demo" in head and "scripts/test" in head
