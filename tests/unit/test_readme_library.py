"""The README's library examples run, and print what the README says they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def library_examples() -> list[tuple[str, str]]:
    text = README.read_text()
    section = text.split("## Using the detectors as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```\n```text\n(.*?)```", section, flags=re.S)


def test_the_library_section_has_its_examples():
    assert len(library_examples()) == 4


def test_each_example_prints_what_the_readme_shows():
    for code, shown in library_examples():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), {})
        assert printed.getvalue() == shown, code
