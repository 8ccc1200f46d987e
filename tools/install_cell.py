"""Put the same first cell into every chapter and exercise notebook: install mafkit if missing.

Where the course package is installed (``make``, Binder, CI) the cell does nothing. In Colab or a
bare Jupyter it installs the course's release (the version in ``pyproject.toml``, from the
repository in ``_config.yml``) with ``--no-deps``, so the PyTorch already there is never
replaced. The environment variable ``MAFKIT_SOURCE`` overrides where it installs from (a wheel,
a fork); the tests use it because the real address cannot be reached from them.

The cell carries the tag ``remove-cell``: the website does not show it.

Usage: python tools/install_cell.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("chapters/[0-9]*.ipynb", "exercises/source/[0-9]*.ipynb")
MARKER = "# Install the course package mafkit where it is missing"
TAGS = ["remove-cell"]


def course_version() -> str:
    """The one version of the course: ``pyproject.toml``'s ``project.version``."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["version"]


def repository_url() -> str:
    for line in (ROOT / "_config.yml").read_text().splitlines():
        if line.strip().startswith("url:") and "github.com" in line:
            return line.split("url:", 1)[1].strip()
    raise ValueError("_config.yml has no repository url")


def release_source() -> str:
    """What the cell installs by default: the tagged release of the course repository."""
    return f"git+{repository_url()}@v{course_version()}"


def cell_source() -> str:
    return f"""{MARKER}
# (Colab, a bare Jupyter); it does nothing where mafkit is installed.
# --no-deps: never replace the PyTorch that is already installed.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("mafkit") is None:
    source = os.environ.get(
        "MAFKIT_SOURCE", "{release_source()}"
    )
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, source], check=True)"""


def install_cell() -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(TAGS)},
        "outputs": [],
        "source": [line + "\n" for line in cell_source().splitlines()[:-1]]
        + cell_source().splitlines()[-1:],
    }


def is_install_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "".join(cell["source"]).startswith(MARKER)


def with_install_cell(notebook: dict) -> dict:
    """``notebook`` with the install cell as its first code cell (replaced if already there)."""
    cells = [cell for cell in notebook["cells"] if not is_install_cell(cell)]
    first_code = next(
        (i for i, cell in enumerate(cells) if cell["cell_type"] == "code"), len(cells)
    )
    cell = install_cell()
    old = next((c for c in notebook["cells"] if is_install_cell(c)), None)
    same = old is not None and old["source"] == cell["source"]
    if same and set(TAGS) <= set(old.get("metadata", {}).get("tags", [])):
        cell = old  # up to date: keep its execution count and outputs from the last run
    elif old is not None and "id" in old:
        cell["id"] = old["id"]
    elif notebook.get("nbformat_minor", 0) >= 5:
        cell["id"] = "install-mafkit"
    cells.insert(first_code, cell)
    return {**notebook, "cells": cells}


def main(check: bool) -> int:
    stale = []
    for pattern in NOTEBOOKS:
        for path in sorted(ROOT.glob(pattern)):
            notebook = json.loads(path.read_text())
            updated = with_install_cell(notebook)
            if updated != notebook:
                stale.append(str(path.relative_to(ROOT)))
                if not check:
                    path.write_text(json.dumps(updated, indent=1, ensure_ascii=False) + "\n")
    if check and stale:
        print("install cell missing or out of date: " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    sys.exit(main(parser.parse_args().check))
