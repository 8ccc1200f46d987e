"""Site plumbing of the course: one copy of each script, and only the MathJax files pages use.

- Live Code (thebe) is off: it would fetch its library from a CDN and needs a Binder kernel;
  the launch button opens the same notebook on Binder instead. sphinx-thebe still adds its
  configuration script (twice, so the page logs "THEBE_JS_URL has already been declared")
  and a configuration block at the end of pages with code; those scripts, that block and its
  stylesheet are taken out of every page here.
- A script added twice with the same body is written once; sphinx-design's assets are left out
  of pages that use none of its components.
- docutils writes a viewport <meta> of its own next to the one of the Sphinx layout, and marks
  bibliography entries with a role that their list may not hold.
- MathJax: the page loads the MathJax loader (``startup.js``) with the TeX input, the CommonHTML
  output and assistive MathML for screen readers. Only these components, the TeX extensions that
  the loader may fetch on demand and the web fonts are copied into ``_static/mathjax``, from the
  MathJax copy that the package sphinx-mathjax-offline ships.
- Icons: the theme draws its icons with the Font Awesome web fonts (270 kB) and a stylesheet
  that names all ~2000 icons. After the build, both are cut down to the icons that the pages
  and the theme's scripts use (fontTools, which matplotlib already needs, subsets the fonts).
  The theme's script version of Font Awesome, which no page loads any more, and the source
  maps are removed from the site.
- Bibliography: the style ``authoryear`` labels each entry as the text cites it
  ("Papamakarios et al., 2017", not "[PPM17]"), sorts by author and year, and gives each entry
  one link (its URL, else its arXiv identifier, else its DOI) instead of repeating it.
"""

from __future__ import annotations

import io
import re
import shutil
from importlib.util import find_spec
from pathlib import Path

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import first_of, optional, sentence
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

MATHJAX_FILES = (
    "startup.js",
    "core.js",
    "input/tex.js",
    "input/tex/extensions",
    "output/chtml.js",
    "output/chtml/fonts/tex.js",
    "output/chtml/fonts/woff-v2",
    "a11y/assistive-mml.js",
)
MATHJAX_LOADER = {
    "load": ["input/tex", "output/chtml", "a11y/assistive-mml"],
}


def surname(person) -> str:
    return " ".join(part.render_as("text") for part in person.rich_last_names)


class AuthorYearLabels(BaseLabelStyle):
    """Labels as sphinxcontrib-bibtex's author-year citations read: "Kingma and Ba, 2015"."""

    def format_labels(self, sorted_entries):
        seen: dict[str, int] = {}
        for entry in sorted_entries:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [surname(p) for p in people]
            if len(names) >= 3:
                who = f"{names[0]} et al."
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = names[0] if names else entry.fields.get("title", entry.key)
            label = f"{who}, {entry.fields.get('year', 'n.d.')}"
            seen[label] = seen.get(label, 0) + 1
            yield label if seen[label] == 1 else f"{label}{'abcdefgh'[seen[label] - 1]}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"

    def format_web_refs(self, e):
        return sentence[
            first_of[
                optional[self.format_url(e)],
                optional[self.format_eprint(e)],
                optional[self.format_doi(e)],
            ]
        ]


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def mathjax_source() -> Path:
    spec = find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the package sphinx-mathjax-offline (the `book` extra) is not installed")
    return Path(spec.origin).parent / "static" / "mathjax"


def is_thebe(asset: object) -> bool:
    filename = getattr(asset, "filename", None) or ""
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in filename or "THEBE_JS_URL" in body


def is_unused_design(asset: object, body: str) -> bool:
    """sphinx-design's stylesheet and tab script (60 kB), on a page without its components."""
    filename = getattr(asset, "filename", None) or ""
    in_filename = "sphinx-design" in filename or "design-tabs" in filename
    return in_filename and 'class="sd-' not in body


def clean_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    body = context.get("body", "")
    for key in ("script_files", "css_files"):
        if key not in context:
            continue
        seen, kept = set(), []
        for asset in context[key]:
            attributes = getattr(asset, "attributes", {})
            ident = (getattr(asset, "filename", None) or "", attributes.get("body"))
            if is_thebe(asset) or is_unused_design(asset, body) or ident in seen:
                continue
            seen.add(ident)
            kept.append(asset)
        context[key] = kept
    # sphinx-thebe also appends its configuration (and a kernel name) to pages with code.
    body = re.sub(
        r'<script type="text/x-thebe-config">.*?</script>\s*<script>kernelName = [^<]*</script>',
        "",
        body,
        flags=re.DOTALL,
    )
    context["body"] = body
    if 'class="citation-list"' in body:
        # docutils marks the bibliography role="list" but its entries role="doc-biblioentry",
        # which a list may not hold (axe: aria-required-children); they are list items.
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')
    metatags = context.get("metatags", "")
    context["metatags"] = "\n".join(
        line for line in metatags.splitlines() if 'name="viewport"' not in line
    )


def copy_mathjax(app: Sphinx) -> None:
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    for rel in MATHJAX_FILES:
        src, dst = source / rel, target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


ICON_RULE = re.compile(r'((?:\.fa-[a-z0-9-]+:(?:before|after),?)+)\{content:"\\([0-9a-f]+)"\}')
FONT_FACE = re.compile(r"@font-face\{[^}]*\}")
THEME_CSS = "_static/styles/pydata-sphinx-theme.css"
WEBFONTS = "_static/vendor/fontawesome/webfonts"


def used_icons(outdir: Path) -> set[str]:
    """Names of the icons (``fa-bars``...) that a page or one of the site's scripts asks for."""
    names: set[str] = set()
    files = [*outdir.rglob("*.html"), *(outdir / "_static").rglob("*.js")]
    for path in files:
        if path.name.startswith("fontawesome") or "mathjax" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        names.update(re.findall(r"fa-[a-z0-9-]+", text))
    return names


def prune_icons(outdir: Path) -> None:
    """Keep only the icon rules and font glyphs of the icons in use."""
    from fontTools import subset

    css_path = outdir / THEME_CSS
    css = css_path.read_text(encoding="utf-8")
    names = used_icons(outdir)
    codepoints: set[int] = set()

    def keep_or_drop(match: re.Match) -> str:
        classes = re.findall(r"\.(fa-[a-z0-9-]+):", match.group(1))
        if names.isdisjoint(classes):
            return ""
        codepoints.add(int(match.group(2), 16))
        return match.group(0)

    css = ICON_RULE.sub(keep_or_drop, css)
    fonts = outdir / WEBFONTS
    for ttf in sorted(fonts.glob("*.ttf")):
        options = subset.Options()
        options.flavor = "woff"
        font = subset.load_font(str(ttf), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(codepoints))
        subsetter.subset(font)
        subset.save_font(font, str(ttf.with_suffix(".woff")), options)
        ttf.unlink()
        ttf.with_suffix(".woff2").unlink(missing_ok=True)

    def woff_only(match: re.Match) -> str:
        rule = match.group(0)
        if "webfonts/fa-" not in rule:
            return rule
        woff2 = r'url\(([^)]*?)\.woff2\) format\("woff2"\)'
        rule = re.sub(woff2, r'url(\1.woff) format("woff")', rule)
        return re.sub(r',url\([^)]*\.ttf\) format\("truetype"\)', "", rule)

    css_path.write_text(FONT_FACE.sub(woff_only, css), encoding="utf-8")
    for unused in (outdir / "_static").rglob("*.map"):
        unused.unlink()
    for unused in (outdir / "_static" / "scripts").glob("fontawesome.js*"):
        unused.unlink()


def palette_images(outdir: Path) -> None:
    """Re-encode the figures' PNGs with a 256-colour palette where that makes them smaller.

    Matplotlib writes full-colour PNGs; a course figure uses a few colours and at most one
    256-step colour map, so a palette looks the same and halves the bytes (chapter 2: 629 kB
    of figures become 262 kB), which keeps a chapter's cold load within its budget.
    """
    from PIL import Image

    for path in (outdir / "_images").glob("*.png"):
        with Image.open(path) as image:
            if image.mode == "P":
                continue
            palette = image.convert("RGB").quantize(colors=256)
        packed = io.BytesIO()
        palette.save(packed, "PNG", optimize=True)
        if packed.tell() < path.stat().st_size:
            path.write_bytes(packed.getvalue())


def finish_site(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    copy_mathjax(app)
    prune_icons(Path(app.outdir))
    palette_images(Path(app.outdir))


def configure(app: Sphinx, config) -> None:
    config.mathjax_path = "mathjax/startup.js"
    mj = dict(config.mathjax3_config or {})
    mj["loader"] = {**MATHJAX_LOADER, **mj.get("loader", {})}
    config.mathjax3_config = mj


class _HiddenSolutionStart(nodes.Element):
    """Where a gated solution began, in a build that hides solutions (removed before writing)."""


def _hidden_solution_start_directive():
    from sphinx_exercise.directive import SolutionStartDirective

    class HiddenSolutionStart(SolutionStartDirective):
        """``solution-start`` that leaves a marker when solutions are hidden.

        sphinx-exercise's own directive returns nothing then, so the cells up to
        ``solution-end`` (a gated solution's code and prose) would stay on the page.
        """

        def run(self) -> list[nodes.Node]:
            result = super().run()
            return [_HiddenSolutionStart()] if self.config.hide_solutions else result

    return HiddenSolutionStart


class DropHiddenSolutions(SphinxTransform):
    """With ``hide_solutions``, remove each gated solution from its start to its end marker."""

    default_priority = 5  # after sphinx-exercise's structure check, before it merges

    def apply(self) -> None:
        from sphinx_exercise.nodes import solution_end_node

        for start in list(self.document.findall(_HiddenSolutionStart)):
            parent = start.parent
            following = parent.children[parent.index(start) :]
            ends = [i for i, node in enumerate(following) if isinstance(node, solution_end_node)]
            for node in following[: ends[0] + 1 if ends else 1]:
                parent.remove(node)


def setup(app: Sphinx) -> dict:
    # Some extension registers node handlers under the builder name "singlehtml", after which
    # Sphinx no longer falls back to the "html" ones: give myst-nb's hidden-input node to the
    # single-page build (the PDF) as well.
    from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput, visit_HideCellInput

    handlers = (visit_HideCellInput, depart_HideCellInput)
    app.add_node(HideCodeCellNode, override=True, html=handlers, singlehtml=handlers)
    app.add_directive("solution-start", _hidden_solution_start_directive(), override=True)
    app.add_node(_HiddenSolutionStart)
    app.add_transform(DropHiddenSolutions)
    mathjax_source()  # fail early, with a clear message, when MathJax is missing
    app.connect("config-inited", configure, priority=900)
    app.connect("html-page-context", clean_page, priority=900)
    app.connect("build-finished", finish_site)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
