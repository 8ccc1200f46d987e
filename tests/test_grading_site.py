"""The website for a class: `make html-nosolutions` builds the site with every solution of the
chapters' exercises left out, while the exercises themselves stay."""

from __future__ import annotations

import html
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# A sphinx-exercise directive in a markdown cell: ```{solution} label ... ``` (or :::).
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<kind>exercise|solution)\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$",
    re.M | re.S,
)
# A solution with code cells: a markdown cell opens it, later cells hold it, one closes it.
GATED_START = re.compile(
    r"^(?:`{3,}|:{3,})\{solution-start\}[^\n]*\n(?:\s*:[\w-]+:[^\n]*\n)*", re.M
)


def phrases(kind: str) -> list[tuple[str, str]]:
    """Distinctive lines of every {kind} directive in the chapters, as (chapter, line)."""
    found = []
    for path in CHAPTERS:
        gated = False  # inside a solution-start ... solution-end pair of cells
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            bodies = [m["body"] for m in DIRECTIVE.finditer(cell.source) if m["kind"] == kind]
            if kind != "solution":
                pass
            elif GATED_START.search(cell.source):
                gated = True
                bodies.append(GATED_START.split(cell.source)[-1])
            elif "{solution-end}" in cell.source:
                gated = False
            elif gated:
                bodies.append(cell.source)
            for body in bodies:
                for line in body.splitlines():
                    line = line.strip().replace("`", "")
                    if len(line) >= 25 and not re.search(r"[$\\{}\[\]:<>&|*_]|^#", line):
                        found.append((path.stem, squeeze(line)))
    return found


def squeeze(text: str) -> str:
    """Text compared without whitespace (tags leave spaces around inline code) and with
    Sphinx's curly quotes made straight."""
    for curly, straight in (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"')):
        text = text.replace(curly, straight)
    return "".join(text.split())


def page_text(page: pathlib.Path) -> str:
    return squeeze(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())))


def build(output: pathlib.Path, *options: str) -> pathlib.Path:
    script = ROOT / "exercises" / "site_without_solutions.py"
    command = [sys.executable, str(script), str(output), *options]
    subprocess.run(command, check=True, capture_output=True)
    return output / "_build" / "html" / "chapters"


@pytest.fixture(scope="module")
def site_without_solutions(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return build(tmp_path_factory.mktemp("nosolutions"))


@pytest.fixture(scope="module")
def site_with_solutions(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The same build with the option off: the phrases searched for are on its pages."""
    return build(tmp_path_factory.mktemp("solutions"), "--keep-solutions")


def test_the_chapters_have_solutions_to_hide() -> None:
    assert len({chapter for chapter, _ in phrases("solution")}) >= 5


def test_site_without_solutions_has_no_solution_text(
    site_without_solutions: pathlib.Path, site_with_solutions: pathlib.Path
) -> None:
    solutions = phrases("solution")
    shown = {p.stem: page_text(p) for p in site_with_solutions.glob("*.html")}
    found = [(chapter, line) for chapter, line in solutions if line in shown[chapter]]
    assert len(found) >= len(solutions) * 0.8, "the search must find solutions where shown"
    texts = {p.stem: page_text(p) for p in site_without_solutions.glob("*.html")}
    leaked = [(chapter, line) for chapter, line in solutions if line in texts[chapter]]
    assert leaked == []
    assert not any(
        "solution-" in page.read_text() for page in site_without_solutions.glob("*.html")
    )


def test_site_without_solutions_keeps_the_exercises(site_without_solutions: pathlib.Path) -> None:
    texts = {p.stem: page_text(p) for p in site_without_solutions.glob("*.html")}
    exercises = phrases("exercise")
    assert len(exercises) >= 10
    missing = [(chapter, line) for chapter, line in exercises if line not in texts[chapter]]
    assert missing == []
