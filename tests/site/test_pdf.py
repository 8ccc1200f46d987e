"""The whole book as one PDF (`make pdf`): every chapter, its figures and its math."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from test_site import ROOT

pypdf = pytest.importorskip("pypdf", reason="pypdf comes with the `book` extra")

PDF = ROOT / "_build" / "pdf" / "maf-course.pdf"
SINGLE = ROOT / "_build" / "singlehtml" / "book.html"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# Pages the book needs at the least: the seven chapters alone print to far more than this.
MIN_PAGES = 60


def chapter_title(notebook: Path) -> str:
    """The level-1 heading of a chapter notebook."""
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    raise AssertionError(f"{notebook.name} has no '# ' title")


def squash(text: str) -> str:
    """Text without spaces, hyphens at line ends or case, so line breaks do not matter."""
    return re.sub(r"[\s\u00ad-]+", "", unicodedata.normalize("NFKC", text)).lower()


@pytest.fixture(scope="module")
def book() -> pypdf.PdfReader:
    if not PDF.is_file():
        pytest.fail(f"no {PDF.relative_to(ROOT)}: run `make pdf` first")
    return pypdf.PdfReader(PDF)


@pytest.fixture(scope="module")
def text(book: pypdf.PdfReader) -> str:
    return squash("\n".join(page.extract_text() or "" for page in book.pages))


def test_the_pdf_has_the_pages_of_a_book(book: pypdf.PdfReader) -> None:
    assert len(book.pages) >= MIN_PAGES, f"only {len(book.pages)} pages"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_title_is_in_the_pdf(text: str, notebook: Path) -> None:
    title = chapter_title(notebook)
    assert squash(title) in text, f"the chapter title {title!r} is not in the PDF text"


@pytest.mark.parametrize("heading", ["References", "Glossary", "Notation"])
def test_the_back_matter_is_in_the_pdf(text: str, heading: str) -> None:
    assert squash(heading) in text


def test_every_figure_of_the_site_is_embedded(book: pypdf.PdfReader) -> None:
    html = SINGLE.read_text(encoding="utf-8")
    figures = set(re.findall(r'<img[^>]+src="([^"]*_images/[^"]+)"', html))
    embedded = sum(len(page.images) for page in book.pages)
    assert figures, "the single-page build has no figures"
    assert embedded >= len(figures), f"{embedded} images in the PDF, {len(figures)} on the site"


def test_math_is_typeset_in_the_pdf(book: pypdf.PdfReader, text: str) -> None:
    # Math that MathJax did not typeset would print as TeX source; typeset math is drawn with
    # MathJax's web fonts, which Chromium embeds as Type 3 fonts.
    for tex in ("\\frac", "\\lvert", "\\(", "$$"):
        assert tex not in text, f"raw TeX {tex!r} in the PDF"
    with_math = 0
    for page in book.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        subtypes = {font.get_object().get("/Subtype") for font in fonts.values()}
        with_math += "/Type3" in subtypes
    assert with_math >= len(CHAPTERS), f"math fonts on only {with_math} pages"
