"""Checks on the built site (_build/html); run them with `make sitecheck` after `make html`."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
)


def toc_files() -> list[str]:
    """Return every document named in _toc.yml (the root first), without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [str(Path(f).with_suffix("")) if Path(f).suffix else f for f in files]


PAGES = toc_files()


def page_path(doc: str) -> Path:
    return HTML / f"{doc}.html"


@pytest.fixture(scope="module", autouse=True)
def built_site() -> None:
    if not (HTML / "index.html").exists():
        pytest.fail(f"no built site in {HTML}: run `make html` (or `make book`) first")


class VisibleText(HTMLParser):
    """Collects the text a reader sees, leaving out scripts, styles and code blocks."""

    HIDDEN = {"script", "style", "pre", "code"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def has_math(html: str) -> bool:
    return 'class="math' in html


def mathjax_sources(html: str) -> list[str]:
    return [
        src for src in re.findall(r'<script[^>]*\ssrc="([^"]+)"', html) if "mathjax" in src.lower()
    ]


@pytest.mark.parametrize("doc", PAGES)
def test_every_toc_entry_has_a_page(doc: str) -> None:
    assert page_path(doc).is_file(), f"{doc} is in _toc.yml but {page_path(doc)} was not built"


@pytest.mark.parametrize("doc", PAGES)
def test_no_page_has_unresolved_references(doc: str) -> None:
    html = page_path(doc).read_text(encoding="utf-8")
    assert 'class="problematic"' not in html, f"{doc}: a reference or role did not resolve"
    assert "???" not in visible_text(html), f"{doc}: '???' marks an unresolved citation"


@pytest.mark.parametrize("doc", PAGES)
def test_no_page_shows_raw_dollar_math(doc: str) -> None:
    text = visible_text(page_path(doc).read_text(encoding="utf-8"))
    assert "$$" not in text, f"{doc}: '$$' in the text; put display math in its own paragraph"


@pytest.mark.parametrize("doc", PAGES)
def test_mathjax_is_served_from_the_site_itself(doc: str) -> None:
    path = page_path(doc)
    html = path.read_text(encoding="utf-8")
    sources = mathjax_sources(html)
    if has_math(html):
        assert sources, f"{doc} has math but loads no MathJax"
    for src in sources:
        assert "://" not in src and not src.startswith("//"), f"{doc} loads MathJax from {src}"
        assert "_static" in src, f"{doc}: MathJax at {src} is not in _static"
        local = (path.parent / src.split("?")[0]).resolve()
        assert local.is_file(), f"{doc}: {src} points to a missing file {local}"


def test_the_front_page_has_displayed_math() -> None:
    html = page_path(PAGES[0]).read_text(encoding="utf-8")
    assert 'class="math notranslate nohighlight"' in html


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "); "
        "install it (Debian: apt-get install chromium) to check that math renders"
    )


@pytest.mark.parametrize("doc", PAGES)
def test_page_math_is_typeset_in_a_headless_browser(doc: str, chromium: str) -> None:
    path = page_path(doc)
    if not has_math(path.read_text(encoding="utf-8")):
        pytest.skip(f"{doc} has no math")
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<mjx-container" in dom, f"{doc}: MathJax did not typeset the math"
    assert "<mjx-merror" not in dom, f"{doc}: MathJax reported an error in a formula"


@pytest.mark.parametrize("doc", PAGES)
def test_page_head_has_one_of_each_script_and_meta(doc: str) -> None:
    html = page_path(doc).read_text(encoding="utf-8")
    assert html.count('name="viewport"') == 1, f"{doc}: the viewport <meta> is not written once"
    sources = re.findall(r'<script[^>]*\ssrc="([^"?]+)', html)
    twice = {src for src in sources if sources.count(src) > 1}
    assert not twice, f"{doc} loads {sorted(twice)} more than once"
    bodies = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    assert len(bodies) == len(set(bodies)), f"{doc} repeats an inline script"


@pytest.mark.parametrize("doc", PAGES)
def test_no_live_code_and_no_cdn(doc: str) -> None:
    html = page_path(doc).read_text(encoding="utf-8")
    assert "thebe" not in html.lower(), f"{doc} still carries Live Code (thebe)"
    remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', html)
    assert remote == [], f"{doc} loads {remote}"


def test_only_the_mathjax_that_pages_use_is_shipped() -> None:
    mathjax = HTML / "_static" / "mathjax"
    size = sum(f.stat().st_size for f in mathjax.rglob("*") if f.is_file())
    assert (mathjax / "startup.js").is_file()
    assert not (mathjax / "sre").exists(), "the speech-rule engine is shipped but never loaded"
    assert size < 3_000_000, f"_static/mathjax holds {size / 1e6:.1f} MB"
