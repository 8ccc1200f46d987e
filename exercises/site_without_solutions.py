"""Build the course's website without any solution, for a class.

The chapters' exercises use sphinx-exercise; its option ``hide_solutions``
leaves every ``{solution}`` directive (and every gated ``solution-start`` ...
``solution-end`` block) out of the pages. This script copies ``_config.yml``
with that option switched on into the output folder and builds the site with
it, so ``_config.yml`` itself is never edited:

    python exercises/site_without_solutions.py _build/nosolutions

The pages are then in ``_build/nosolutions/_build/html/``."""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_config(output: pathlib.Path, hide: bool = True) -> pathlib.Path:
    """``_config.yml`` with ``hide_solutions`` on, written into ``output``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["hide_solutions"] = hide
    output.mkdir(parents=True, exist_ok=True)
    # Local extensions are found relative to the config file: point them
    # at the checkout.
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, folder in local.items():
        local[name] = str((ROOT / folder).resolve())
    path = output / "_config_nosolutions.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "output", type=pathlib.Path, help="folder for the config and the site"
    )
    parser.add_argument(
        "--keep-solutions",
        action="store_true",
        help="the same build with the solutions (to compare with)",
    )
    args = parser.parse_args(argv)
    output = args.output.resolve()
    config = write_config(output, hide=not args.keep_solutions)
    command = [
        str(pathlib.Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(ROOT),
        "--config",
        str(config),
        "--path-output",
        str(output),
        "-W",
        "-n",
        "--keep-going",
    ]
    print("+", " ".join(command))
    subprocess.run(command, check=True)
    index = output / "_build" / "html" / "index.html"
    print(f"The site without solutions is at: {index}")


if __name__ == "__main__":
    main()
