"""The built site as a reader's browser shows it: headless Chromium over every page.

tests/site/browser.mjs (Playwright driving /usr/bin/chromium, plus axe-core) opens each page
at 1280 px (light and dark) and at 400 px, and writes what it finds to
_build/sitecheck/report.json; each test below turns one kind of finding into a failure.
`make sitecheck` installs the two npm packages (tests/site/package.json) first.
Set SITECHECK_SCREENSHOTS=1 to also keep full-page screenshots in _build/sitecheck/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_site import HTML, PAGES, ROOT

HERE = Path(__file__).resolve().parent
OUT = ROOT / "_build" / "sitecheck"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# A chapter page with everything it fetches (HTML, styles, scripts, fonts, figures).
MAX_COLD_LOAD_BYTES = 2_000_000
# Code boxes show at least this many columns (the notebooks are formatted to 79).
MIN_CODE_COLUMNS = 79
# A figure shown at less than this fraction of its drawn width has shrunken, illegible text.
MIN_IMAGE_SCALE = 0.7
IMAGE_FILE = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)
CHAPTERS = [doc for doc in PAGES if re.search(r"^chapters/\d\d_", doc)]


@pytest.fixture(scope="session")
def report() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the browser checks (Debian: apt-get install nodejs npm)")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        pytest.fail("run `npm ci --prefix tests/site` (or `make sitecheck`) to install the checker")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "report.json"
    shots = [str(OUT)] if os.environ.get("SITECHECK_SCREENSHOTS") else []
    pages = [f"{doc}.html" for doc in PAGES]
    result = subprocess.run(
        [node, str(HERE / "browser.mjs"), "check", str(HTML), str(path), *shots, "--", *pages],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(path.read_text(encoding="utf-8"))


def entry(report: dict, doc: str) -> dict:
    return report[f"{doc}.html"]


@pytest.mark.parametrize("doc", PAGES)
def test_no_console_errors(report: dict, doc: str) -> None:
    page = entry(report, doc)
    assert page["console_errors"] == [], f"{doc}: {page['console_errors']}"
    assert page["failed_requests"] == [], f"{doc}: {page['failed_requests']}"


@pytest.mark.parametrize("doc", PAGES)
def test_cold_load_fits_the_budget(report: dict, doc: str) -> None:
    page = entry(report, doc)
    largest = ", ".join(f"{url} {size // 1000} kB" for url, size in page["largest_requests"][:5])
    assert page["cold_load_bytes"] <= MAX_COLD_LOAD_BYTES, (
        f"{doc}: a cold load fetches {page['cold_load_bytes'] / 1e6:.2f} MB "
        f"(budget {MAX_COLD_LOAD_BYTES / 1e6:.1f} MB); largest: {largest}"
    )


@pytest.mark.parametrize("doc", PAGES)
def test_nothing_is_fetched_from_another_host(report: dict, doc: str) -> None:
    hosts = [url for url, _ in entry(report, doc)["largest_requests"] if "://" in url]
    assert hosts == [], f"{doc} fetches {hosts}"


@pytest.mark.parametrize("doc", PAGES)
def test_math_is_typeset_without_errors(report: dict, doc: str) -> None:
    page = entry(report, doc)
    assert page["math_errors"] == 0, f"{doc}: {page['math_errors']} formulas failed to typeset"


@pytest.mark.parametrize("doc", PAGES)
def test_code_boxes_show_79_columns(report: dict, doc: str) -> None:
    columns = entry(report, doc)["code_columns"]
    if columns is None:
        pytest.skip(f"{doc} has no code box")
    assert columns >= MIN_CODE_COLUMNS, f"{doc}: a code box shows {columns} columns at 1280 px"


@pytest.mark.parametrize("doc", PAGES)
def test_no_code_cell_scrolls_sideways(report: dict, doc: str) -> None:
    boxes = entry(report, doc)["code_boxes_scrolling"]
    lines = [f"{b['columns']} cols: {b['longest_line']!r}" for b in boxes]
    assert boxes == [], f"{doc}: {len(boxes)} code boxes scroll at 1280 px: " + "; ".join(lines)


@pytest.mark.parametrize("doc", PAGES)
def test_printed_code_wraps(report: dict, doc: str) -> None:
    count = entry(report, doc)["print_code_overflow"]
    assert count == 0, f"{doc}: {count} code boxes are cut off when printed"


@pytest.mark.parametrize("doc", PAGES)
def test_every_image_has_meaningful_alt_text(report: dict, doc: str) -> None:
    bad = []
    for img in entry(report, doc)["images"]:
        alt = (img["alt"] or "").strip()
        if len(alt.split()) < 3 or IMAGE_FILE.search(alt) or "_images" in alt:
            bad.append(f"{img['src']} alt={alt!r}")
    assert bad == [], f"{doc}: {len(bad)} images without a description: " + "; ".join(bad[:5])


@pytest.mark.parametrize("doc", PAGES)
def test_every_image_has_a_numbered_caption(report: dict, doc: str) -> None:
    bad = [img["src"] for img in entry(report, doc)["images"] if not img["number"]]
    assert bad == [], f"{doc}: {len(bad)} images without a numbered caption: {bad[:5]}"


@pytest.mark.parametrize("doc", PAGES)
def test_figures_are_shown_near_their_drawn_size(report: dict, doc: str) -> None:
    images = entry(report, doc)["images"]
    assert all(img["loaded"] for img in images), f"{doc}: an image did not load"
    small = [
        f"{img['src']} drawn {img['intrinsic_px']} px, shown {img['shown_px']} px"
        for img in images
        if img["scale"] is not None and img["scale"] < MIN_IMAGE_SCALE
    ]
    assert small == [], f"{doc}: {len(small)} figures shrunk below {MIN_IMAGE_SCALE}: " + "; ".join(
        small[:5]
    )


@pytest.mark.parametrize("doc", PAGES)
@pytest.mark.parametrize("mode", ["light", "dark"])
def test_no_serious_accessibility_violations(report: dict, doc: str, mode: str) -> None:
    violations = entry(report, doc)[f"axe_{mode}"]
    summary = [
        f"{v['impact']} {v['id']} ×{v['count']}: {v['help']} {v['nodes'][:2]}" for v in violations
    ]
    assert violations == [], f"{doc} ({mode}): " + "; ".join(summary)


@pytest.mark.parametrize("doc", PAGES)
def test_nothing_overflows_a_400px_screen(report: dict, doc: str) -> None:
    narrow = entry(report, doc)["narrow"]
    assert (
        narrow["document_width"] <= narrow["viewport"]
    ), f"{doc}: the page is {narrow['document_width']} px wide in a {narrow['viewport']} px window"
    assert narrow["overflowing"] == [], f"{doc}: sticks out at 400 px: {narrow['overflowing'][:5]}"


@pytest.mark.parametrize("doc", PAGES)
def test_solution_header_link_opens_the_solution(report: dict, doc: str) -> None:
    links = entry(report, doc)["solution_links"]
    if not links:
        pytest.skip(f"{doc} has no solution")
    closed = [link["id"] for link in links if not link["opens"]]
    assert closed == [], f"{doc}: clicking the header link left {closed} closed"


def test_every_chapter_is_checked(report: dict) -> None:
    assert len(CHAPTERS) == 7, CHAPTERS
    assert {f"{doc}.html" for doc in PAGES} <= set(report)
