"""The notebooks students open in Colab, Binder or a bare Jupyter read as the website does.

JupyterLab and Colab render a notebook's Markdown as CommonMark with tables and raw HTML, and
know nothing of MyST. These tests render every copy in ``notebooks/`` that way and look for
left-over MyST syntax and for solutions that would show unfolded. They run after the site build,
whose cross-reference numbers the copies use.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import plain_notebooks  # noqa: E402

PLAIN = sorted((ROOT / "notebooks").glob("*/*.ipynb"))
RENDER = MarkdownIt("commonmark").enable("table")
# What a reader would see as raw MyST: roles, directive fences, targets, option lines, labels.
RAW_MYST = [
    re.compile(r"\{[a-z]+(?::[a-z]+)?\}`"),
    re.compile(r"(?m)^\s*(?::::|```)\{"),
    re.compile(r"(?m)^\s*\([\w.:-]+\)=\s*$"),
    re.compile(r"(?m)^:(label|name|class|nonumber):"),
    re.compile(r"\$\$\s*\([\w.:-]+\)"),
]


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def test_copies_are_up_to_date_with_the_chapters() -> None:
    assert plain_notebooks.build(check=True) == 0, "run: make notebooks"


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_raw_myst_after_rendering(path: Path) -> None:
    for source in markdown_cells(path):
        html = RENDER.render(source)
        for pattern in RAW_MYST:
            assert not pattern.search(
                source
            ), f"{path.name}: raw MyST {pattern.pattern!r} in\n{source[:300]}"
        assert "{cite" not in html and "{numref" not in html and "{glue" not in html


def solution_lines(source: Path) -> list[str]:
    """Plain lines of prose from the solutions of a MyST notebook (no roles, math or code)."""
    lines, inside = [], False
    for text in markdown_cells(source):
        for line in text.splitlines():
            opened = re.match(r"^(:{3,}|`{3,})\{(solution|solution-start)\}", line)
            if opened:
                inside = True
            elif inside and (re.match(r"^(:{3,}|`{3,})\s*$", line) or "{solution-end}" in line):
                inside = False
            elif inside and len(line) >= 30 and not re.search(r"[{}`$|<>*_:]", line):
                lines.append(line.strip())
        inside = inside and False  # a plain solution block ends with its cell
    return lines


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_solutions_are_folded(path: Path) -> None:
    cells = markdown_cells(path)
    for cell in cells:
        assert cell.count("<details>") == cell.count(
            "</details>"
        ), f"{path.name}: unclosed <details>"
        assert "<details open" not in cell
    folded = "\n".join(
        part.split("</details>")[0] for cell in cells for part in cell.split("<details>")[1:]
    )
    unfolded = "\n".join(re.sub(r"<details>.*?</details>", "", cell, flags=re.S) for cell in cells)
    for line in solution_lines(ROOT / path.parent.name / path.name):
        assert line not in unfolded, f"{path.name}: solution text shown unfolded: {line!r}"
        assert line in folded, f"{path.name}: solution text lost: {line!r}"


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_code_cell_of_the_source_is_kept(path: Path) -> None:
    source = ROOT / path.parent.name / path.name
    original = [c for c in json.loads(source.read_text())["cells"] if c["cell_type"] == "code"]
    copy = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    gated = len(original) - len(copy)
    assert 0 <= gated, path.name
    outputs = {c.get("id"): c["outputs"] for c in original}
    assert all(c["outputs"] == outputs[c.get("id")] for c in copy), "outputs as stored"
    assert copy and "".join(copy[0]["source"]).startswith(plain_notebooks_marker())


def plain_notebooks_marker() -> str:
    import install_cell

    return install_cell.MARKER
