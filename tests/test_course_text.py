"""Guards on the course's text: computed numbers glued, one spelling, readable cells, figures
described. Each rule is one the chapters follow; a new cell that breaks it fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(ROOT.glob("chapters/[0-9]*.ipynb"))
EXERCISES = sorted(ROOT.glob("exercises/[0-9]*.ipynb"))
ALLOWED_NUMBERS = ROOT / "tests" / "prose_numbers.txt"

# American spellings of words the course writes often; the course writes British English.
AMERICAN = re.compile(
    r"\b(normaliz\w*|factoriz\w*|parametriz\w*|optimiz\w*|behavior\w*|colors?|labeled|"
    r"modeling|dequantiz\w*|summariz\w*|generaliz\w*|minimiz\w*|maximiz\w*|visualiz\w*)\b",
    re.I,
)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


def cells(path: Path, kind: str) -> list[tuple[int, dict]]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [(i, c) for i, c in enumerate(notebook["cells"]) if c["cell_type"] == kind]


def prose(source: str) -> str:
    """Markdown without math, code, roles and link targets: what a reader reads as words."""
    source = re.sub(r"```.*?```", "", source, flags=re.S)
    source = re.sub(r"\$\$.*?\$\$", "", source, flags=re.S)
    source = re.sub(r"\$[^$\n]*\$", "", source)
    source = re.sub(r"\{[a-z:]+\}`[^`]*`", "", source)
    source = re.sub(r"`[^`]*`", "", source)
    source = re.sub(r"\]\([^)]*\)", "]", source)
    return source


def allowed_numbers() -> set[tuple[str, str]]:
    rows = set()
    for line in ALLOWED_NUMBERS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            chapter, number, reason = (part.strip() for part in line.split("|"))
            assert reason, f"{line!r}: say why the number needs no glue"
            rows.add((chapter, number))
    return rows


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_numbers_in_prose_are_glued_or_explained(path: Path) -> None:
    allowed = allowed_numbers()
    for index, cell in cells(path, "markdown"):
        for line in prose("".join(cell["source"])).splitlines():
            if line.lstrip().startswith("|"):  # the paper's Table 1 and other quoted tables
                continue
            for number in DECIMAL.findall(line):
                assert (path.stem[:6], number) in allowed, (
                    f"{path.name} cell {index}: {number} in the prose is neither glued from the "
                    f"cell that computed it nor listed in tests/prose_numbers.txt: {line.strip()}"
                )


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES, ids=lambda p: p.stem)
def test_british_spelling(path: Path) -> None:
    for index, cell in cells(path, "markdown"):
        found = AMERICAN.findall(prose("".join(cell["source"])))
        assert not found, f"{path.name} cell {index}: American spelling {found}"
    for index, cell in cells(path, "code"):
        comments = re.findall(r"#(.*)", "".join(cell["source"]))
        found = [word for text in comments for word in AMERICAN.findall(text)]
        assert not found, f"{path.name} cell {index}: American spelling in a comment {found}"


def test_british_spelling_in_the_other_pages() -> None:
    for page in ROOT.glob("chapters/*.md"):
        found = AMERICAN.findall(prose(page.read_text(encoding="utf-8")))
        assert not found, f"{page.name}: American spelling {found}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_fit_the_page(path: Path) -> None:
    for index, cell in cells(path, "code"):
        lines = "".join(cell["source"]).splitlines()
        assert len(lines) <= 15, f"{path.name} cell {index}: {len(lines)} lines (at most 15)"
        wide = [line for line in lines if len(line) > 79]
        assert not wide, f"{path.name} cell {index}: wider than 79 columns: {wide[0]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_visible_test_markers(path: Path) -> None:
    for index, cell in cells(path, "code"):
        assert "NBVAL_" not in "".join(
            cell["source"]
        ), f"{path.name} cell {index}: use nbval's cell tags, not a visible comment"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_is_numbered_and_described(path: Path) -> None:
    for index, cell in cells(path, "code"):
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        assert len(images) == 1, f"{path.name} cell {index}: one figure per cell"
        mystnb = cell["metadata"].get("mystnb", {})
        figure, image = mystnb.get("figure", {}), mystnb.get("image", {})
        assert figure.get("caption") and figure.get("name"), f"{path.name} cell {index}"
        alt = image.get("alt", "")
        assert len(alt.split()) >= 5, f"{path.name} cell {index}: alt text must say what it shows"
        source = "\n".join("".join(c["source"]) for _, c in cells(path, "markdown"))
        assert figure["name"] in source, f"{path.name}: no reference to {figure['name']}"
