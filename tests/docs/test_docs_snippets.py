"""Every ```python block of README.md and docs/**/*.md runs (issue #16), so the snippets cannot rot.

New pages are picked up automatically. A block that cannot run offline and fast may be skipped by the
line just above its fence: ``<!-- docs-test: skip: <reason> -->`` (the reason is required and shown).
Each block runs in a fresh namespace, in a temporary working directory, with one intra-op thread.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>\S.*?)\s*-->\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason or None)`` for each ```python block of the Markdown file ``path``."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        blocks.append((line, match.group(1), skip.group("reason") if skip else None))
    return blocks


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


CASES = [
    pytest.param(path, line, code, reason, id=f"{path.relative_to(ROOT)}:{line}")
    for path in _doc_files()
    for line, code, reason in python_blocks(path)
]


def test_blocks_are_found_and_skips_give_a_reason(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- docs-test: skip: needs a GPU -->\n```python\ny = 2\n```\n"
        "<!-- docs-test: skip: -->\n```python\nz = 3\n```\n```bash\nls\n```\n"
    )
    assert python_blocks(page) == [(2, "x = 1\n", None), (6, "y = 2\n", "needs a GPU"), (10, "z = 3\n", None)]
    assert any("README.md" in str(case.id) for case in CASES)


@pytest.mark.parametrize(("path", "line", "code", "reason"), CASES)
def test_snippet_runs(
    path: Path, line: int, code: str, reason: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_snippet")  # a real module, so that dataclasses defined in a snippet work
    monkeypatch.setitem(sys.modules, module.__name__, module)
    source = "\n" * line + code  # tracebacks point at the Markdown file's own line numbers
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - our own docs
