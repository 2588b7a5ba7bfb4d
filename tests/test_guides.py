"""Every ```python block of docs/guides/*.md runs.

Blocks of one guide run in order in one namespace (a later block may use an earlier block's
names), with the working directory set to a temporary folder. Only fences whose info string is
exactly ``python`` run; write ```python-norun (or any other info string) for code that must
not, e.g. code that needs a GPU or a server. A guide's blocks are skipped when a module they
import is not installed (scikit-learn, scipy, torch are optional for curata). README.md's python
block (placeholder data) is only compiled and its curata names looked up.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDES = sorted((Path(__file__).resolve().parents[1] / "docs" / "guides").glob("*.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of the ```python blocks of a markdown text, in order."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1).strip() == "python":
            out.append((text.count("\n", 0, m.start()) + 2, m.group(2)))
    return out


def test_fence_parser_finds_only_python_blocks():
    text = "x\n```python\na = 1\n```\n\n```python-norun\nb = 2\n```\n```\nc = 3\n```\n```python\nd = a\n```\n"
    blocks = python_blocks(text)
    assert [code for _, code in blocks] == ["a = 1\n", "d = a\n"]
    assert blocks[0][0] == 3  # first code line of the block


def test_there_are_guides():
    assert any(g.name == "drift.md" for g in GUIDES)


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_code_blocks_run(guide, tmp_path, monkeypatch):
    blocks = python_blocks(guide.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{guide.name} has no ```python blocks")
    for _, code in blocks:
        for m in IMPORT.finditer(code):
            pytest.importorskip((m.group(1) or m.group(2)).split(".")[0])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"guide_{guide.stem}"}
    for line, code in blocks:
        try:
            exec(compile(code, f"{guide.name}:{line}", "exec"), namespace)  # noqa: S102 - the guide's own code
        except Exception as exc:
            raise AssertionError(f"{guide.name}, block starting at line {line} failed: {type(exc).__name__}: {exc}") from exc


def test_readme_snippet_names_exist():
    # README's ```python block uses placeholder data, so it cannot run as is; every curata name
    # it calls must exist (an API rename that forgets the README fails here).
    import curata

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = python_blocks(readme)
    assert blocks, "README has no ```python block"
    code = "\n".join(c for _, c in blocks)
    compile(code, "README.md", "exec")  # at least valid Python
    code = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'|#[^\n]*", "", code)  # names in strings and comments are not calls
    names = re.findall(r"\b(curata|boxes|scores|metrics|drift|search|curate)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", code)
    assert names
    for module, attr, sub in names:
        owner = curata if module == "curata" else getattr(curata, module)
        assert hasattr(owner, attr), f"README uses {module}.{attr}, which does not exist"
        obj = getattr(owner, attr)
        if sub and isinstance(obj, type):
            assert hasattr(obj, sub), f"README uses {module}.{attr}.{sub}, which does not exist"
