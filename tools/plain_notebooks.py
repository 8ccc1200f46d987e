"""Write plain-Markdown copies of the course notebooks for any Jupyter (Colab, Binder, a laptop).

The chapters are written in MyST: exercise and solution boxes, citations, numbered references
and numbers glued from cells. Jupyter Book renders them on the website; JupyterLab and Colab show
them as raw text. This script writes a copy of every notebook in which each MyST construct is
replaced by what the website shows, in plain Markdown:

- citations become "Author et al. (Year)" from ``references.bib``;
- ``{numref}``, ``{ref}``, ``{eq}``, ``{doc}`` and ``{term}`` become the text and numbers the
  site prints (read from the Sphinx build's environment, so they are the site's own numbers);
- ``{glue:text}`` becomes the value the notebook computed (from its stored outputs);
- an exercise becomes a bold heading, a solution a closed ``<details>`` element, and code inside
  a gated solution a code block inside that element;
- numbered tables become a caption and a Markdown table; equation labels become ``\\tag{N}``.

The copies keep every code cell (the install cell included) with its stored outputs, so a
reader sees the results before running anything. The website's launch buttons open these
copies (``repository.path_to_book`` in ``_config.yml``). Run after ``jupyter-book build``;
``tests/site/test_plain_notebooks.py`` checks that the copies are up to date and that no MyST
syntax is left.

Usage: python tools/plain_notebooks.py [--check]
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "notebooks"
ENVIRONMENT = ROOT / "_build" / ".doctrees" / "environment.pickle"
SOURCES = ("chapters/[0-9]*.ipynb", "exercises/[0-9]*.ipynb")

ROLE = re.compile(r"\{([a-z]+(?::[a-z]+)?)\}`([^`]*)`")
FENCE_OPEN = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[a-z-]+)\}\s*(?P<arg>.*)$")
TARGET = re.compile(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$")
EQUATION_LABEL = re.compile(r"\$\$\s*\(([A-Za-z0-9_.:-]+)\)\s*$")
TEXT_AND_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
ADMONITIONS = {"note", "tip", "hint", "warning", "important", "seealso", "caution", "attention"}


class Resolver:
    """Turns MyST roles into the text the website shows, using the Sphinx build."""

    def __init__(self, env, bibliography: dict[str, str]) -> None:
        self.env = env
        self.bibliography = bibliography
        self.labels = env.domaindata["std"]["labels"]
        self.anonlabels = env.domaindata["std"]["anonlabels"]
        self.equations = env.domaindata["math"]["objects"]
        self.glued: dict[str, object] = {}
        self.docname = ""

    def number(self, label: str) -> str:
        """The site's number of a figure, table, exercise or chapter labelled ``label``."""
        docname, node_id = self.anonlabels.get(label, (None, None))
        if docname is None:
            raise KeyError(f"unknown label {label!r}")
        for ids in self.env.toc_fignumbers.get(docname, {}).values():
            if node_id in ids:
                return ".".join(map(str, ids[node_id]))
        sections = self.env.toc_secnumbers.get(docname, {})
        # The first section of a page is numbered under the key "", the others by anchor.
        number = sections.get("#" + node_id) or sections.get("", ())
        return ".".join(map(str, number))

    def cite(self, kind: str, keys: str) -> str:
        names = [self.bibliography[key.strip()] for key in keys.split(",")]
        if kind == "cite:t":
            return "; ".join(f"{author} ({year})" for author, year in names)
        return "(" + "; ".join(f"{author}, {year}" for author, year in names) + ")"

    def glue(self, spec: str) -> str:
        key, _, fmt = spec.partition(":")
        value = self.glued[key]
        if fmt:
            return format(float(value) if not isinstance(value, int) else value, fmt)
        return str(value)

    def role(self, match: re.Match) -> str:
        name, content = match.group(1), match.group(2)
        parts = TEXT_AND_TARGET.match(content)
        text, target = (parts["text"], parts["target"]) if parts else (None, content)
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            return self.cite("cite:t" if name.startswith("cite:t") else "cite:p", content)
        if name in ("glue", "glue:", "glue:text", "glue:any"):
            return self.glue(content)
        if name == "math":
            return f"${content}$"
        if name == "term":
            return text or target
        if name == "eq":
            docname, number = self.equations[target][:2]
            return text or f"({number})"
        if name == "numref":
            number = self.number(target)
            if text:
                return text.replace("%s", number).replace("{number}", number)
            return f"{self.kind(target)} {number}"
        if name == "ref":
            return text or str(self.labels[target][2])
        if name == "doc":
            if text:
                return text
            docname = str(Path(self.docname).parent / target).lstrip("./")
            return self.env.titles[docname].astext()
        raise ValueError(f"{self.docname}: no plain form for the role {{{name}}}")

    def kind(self, label: str) -> str:
        docname, node_id = self.anonlabels[label]
        for figtype, ids in self.env.toc_fignumbers.get(docname, {}).items():
            if node_id in ids:
                return {"figure": "Figure", "table": "Table", "code-block": "Listing"}.get(
                    figtype, figtype.capitalize()
                )
        return "Section"

    def inline(self, text: str) -> str:
        return ROLE.sub(self.role, text)


def load_bibliography(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (author text as the site prints it, year)."""
    from pybtex.database import parse_file

    entries = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author", [])
        surnames = [" ".join(person.last_names) for person in people]
        if len(surnames) == 1:
            author = surnames[0]
        elif len(surnames) == 2:
            author = f"{surnames[0]} and {surnames[1]}"
        else:
            author = f"{surnames[0]} et al."
        entries[key] = (author.replace("{", "").replace("}", ""), entry.fields.get("year", ""))
    return entries


def list_table(lines: list[str]) -> list[str]:
    """A MyST list-table body (``* - a`` / ``  - b``) as Markdown table rows."""
    rows: list[list[str]] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("* -"):
            rows.append([stripped[3:].strip()])
        elif stripped.startswith("- ") and rows:
            rows[-1].append(stripped[2:].strip())
        elif stripped and rows:
            rows[-1][-1] += " " + stripped
    if not rows:
        return []
    header = "| " + " | ".join(rows[0]) + " |"
    rule = "| " + " | ".join("---" for _ in rows[0]) + " |"
    return [header, rule] + ["| " + " | ".join(row) + " |" for row in rows[1:]]


def directive(name: str, arg: str, body: list[str], resolver: Resolver) -> list[str]:
    """One MyST directive as plain Markdown lines."""
    options = {}
    while body and body[0].startswith(":") and re.match(r"^:[a-z-]+:", body[0]):
        key, _, value = body.pop(0)[1:].partition(":")
        options[key] = value.strip()
    inner = convert_lines(body, resolver)
    if name in ("exercise", "exercise-start"):
        label = options.get("label", "")
        number = resolver.number(label) if label else ""
        title = (
            f" {number}" + (f" ({arg})" if arg else "") if number else (f" ({arg})" if arg else "")
        )
        return [f"**Exercise{title}.**", ""] + inner
    if name == "solution":
        return (
            ["<details>", "<summary>Solution (click to open)</summary>", ""]
            + inner
            + ["", "</details>"]
        )
    if name in ("table", "list-table"):
        caption = resolver.inline(arg)
        label = options.get("name")
        prefix = f"Table {resolver.number(label)}. " if label else ""
        rows = list_table(inner) if name == "list-table" else inner
        return [f"*{prefix}{caption}*", ""] + rows
    if name in ADMONITIONS or name == "admonition":
        title = arg or name.capitalize()
        return [f"> **{title}.**", ">"] + [f"> {line}" if line else ">" for line in inner]
    if name == "math":
        return ["$$"] + inner + ["$$"]
    raise ValueError(f"{resolver.docname}: no plain form for the directive {{{name}}}")


def convert_lines(lines: list[str], resolver: Resolver) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE_OPEN.match(line)
        if opened:
            fence, name = opened["fence"], opened["name"]
            body, depth, i = [], 1, i + 1
            while i < len(lines):
                inner_open = FENCE_OPEN.match(lines[i])
                if inner_open and inner_open["fence"][0] == fence[0]:
                    depth += 1
                elif lines[i].strip() == fence and (depth := depth - 1) == 0:
                    break
                body.append(lines[i])
                i += 1
            out += directive(name, opened["arg"], body, resolver)
        elif TARGET.match(line) or line.startswith("% "):
            pass
        elif EQUATION_LABEL.search(line):
            label = EQUATION_LABEL.search(line)[1]
            number = resolver.equations[label][1]
            out.append(EQUATION_LABEL.sub(rf"\\tag{{{number}}} $$", line))
        else:
            out.append(resolver.inline(line))
        i += 1
    return out


def gated(cell: dict) -> str | None:
    """'start' or 'end' for the markdown cells that open or close a gated solution."""
    text = "".join(cell["source"]).strip()
    match = FENCE_OPEN.match(text.splitlines()[0]) if text else None
    if match and match["name"] in ("solution-start", "exercise-start"):
        return match["name"]
    if match and match["name"] in ("solution-end", "exercise-end"):
        return match["name"]
    return None


def glued_values(notebook: dict) -> dict[str, object]:
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = output["data"]
                text = next(v for k, v in data.items() if k.endswith("text/plain"))
                text = "".join(text) if isinstance(text, list) else text
                try:
                    values[name] = json.loads(text)
                except json.JSONDecodeError:
                    values[name] = text.strip("'\"")
    return values


def plain_notebook(notebook: dict, resolver: Resolver) -> dict:
    """A copy of ``notebook`` whose Markdown any Jupyter renders as the site does."""
    resolver.glued = glued_values(notebook)
    cells, solution_code = [], None
    for cell in notebook["cells"]:
        cell = copy.deepcopy(cell)
        marker = gated(cell) if cell["cell_type"] == "markdown" else None
        if marker == "solution-start":
            header = FENCE_OPEN.match("".join(cell["source"]).strip().splitlines()[0])
            body = "".join(cell["source"]).strip().splitlines()[1:]
            solution_code = ["<details>", "<summary>Solution (click to open)</summary>", ""]
            solution_code += convert_lines([b for b in body if not b.startswith(":")], resolver)
            del header
            continue
        if marker == "solution-end":
            cells.append(markdown_cell(solution_code + ["", "</details>"]))
            solution_code = None
            continue
        if solution_code is not None:
            if cell["cell_type"] == "code":
                solution_code += ["", "```python", *"".join(cell["source"]).splitlines(), "```"]
            else:
                solution_code += [""] + convert_lines(
                    "".join(cell["source"]).splitlines(), resolver
                )
            continue
        if marker in ("exercise-start", "exercise-end"):
            text = "".join(cell["source"]).strip().splitlines()
            inner = [line for line in text[1:] if not line.startswith(":")]
            cells.append(
                markdown_cell(
                    directive("exercise", "", inner, resolver) if marker == "exercise-start" else []
                )
            )
            continue
        if cell["cell_type"] == "markdown":
            cell["source"] = join_lines(
                convert_lines("".join(cell["source"]).splitlines(), resolver)
            )
        for key in ("mystnb", "execution"):
            cell.get("metadata", {}).pop(key, None)
        cells.append(cell)
    result = copy.deepcopy(notebook)
    result["cells"] = [
        c for c in cells if c["cell_type"] != "markdown" or "".join(c["source"]).strip()
    ]
    return result


def markdown_cell(lines: list[str]) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": join_lines(lines)}


def join_lines(lines: list[str]) -> list[str]:
    return [line + "\n" for line in lines[:-1]] + lines[-1:] if lines else []


def build(check: bool) -> int:
    if not ENVIRONMENT.exists():
        print("error: build the site first (jupyter-book build .)", file=sys.stderr)
        return 2
    with ENVIRONMENT.open("rb") as handle:
        env = pickle.load(handle)
    resolver = Resolver(env, load_bibliography(ROOT / "references.bib"))
    stale = []
    for pattern in SOURCES:
        for source in sorted(ROOT.glob(pattern)):
            relative = source.relative_to(ROOT)
            resolver.docname = str(relative.with_suffix(""))
            notebook = json.loads(source.read_text())
            text = (
                json.dumps(plain_notebook(notebook, resolver), indent=1, ensure_ascii=False) + "\n"
            )
            target = OUT / relative
            if check:
                if not target.exists() or target.read_text() != text:
                    stale.append(str(relative))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    if stale:
        print("out of date in notebooks/: " + ", ".join(stale) + " (run make notebooks)")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the copies are current")
    sys.exit(build(parser.parse_args().check))
