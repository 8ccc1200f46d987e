"""The course runs the same package everywhere: one version, one torch range, one install cell."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import install_cell  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    tomllib = pytest.importorskip("tomli")

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PROJECT["version"]
TAG = f"v{VERSION}"
CONDA_TO_PIP = {"pytorch": "torch"}


def binder_specs() -> dict[str, str]:
    """name -> version specifier of the conda packages in binder/environment.yml."""
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text(encoding="utf-8"))
    specs = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), "the students' image installs nothing with pip but mafkit"
        bracket = re.fullmatch(r"([\w-]+)\[version='([^']*)'.*\]", dep)
        if bracket:
            name, version = bracket.groups()
        else:
            name, version = re.fullmatch(r"([\w.-]+)(.*)", dep).groups()
        specs[CONDA_TO_PIP.get(name, canonicalize_name(name))] = version.lstrip("=")
    return specs


def student_requirements() -> dict[str, str]:
    """What a notebook needs: the runtime dependencies and the `course` extra."""
    specs = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["course"]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, specs)}


def test_binder_installs_what_the_notebooks_need_and_nothing_else() -> None:
    binder = binder_specs()
    binder.pop("python"), binder.pop("pip")
    assert set(binder) == set(student_requirements())


def test_binder_holds_torch_and_every_package_to_the_tested_range() -> None:
    binder, wanted = binder_specs(), student_requirements()
    for name, specifier in wanted.items():
        assert SpecifierSet(binder[name]) == SpecifierSet(specifier), name


def test_torch_range_admits_patch_releases() -> None:
    torch = next(Requirement(s) for s in PROJECT["dependencies"] if s.startswith("torch"))
    assert all(spec.operator not in ("<=", "==") for spec in torch.specifier), torch


def test_every_package_a_notebook_imports_is_declared() -> None:
    declared = {canonicalize_name(Requirement(s).name) for s in PROJECT["dependencies"]}
    declared |= set(student_requirements())
    import_names = {"sklearn": "scikit-learn", "mafkit": None}
    stdlib = set(sys.stdlib_module_names)
    for path in sorted(ROOT.glob("chapters/*.ipynb")) + sorted(ROOT.glob("exercises/**/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for module in re.findall(r"^\s*(?:import|from)\s+(\w+)", "".join(cell["source"]), re.M):
                if module in stdlib or import_names.get(module, "") is None:
                    continue
                name = canonicalize_name(import_names.get(module, module))
                assert (
                    name in declared
                ), f"{path.name} imports {module}, which pyproject.toml does not declare"


def test_the_install_cell_is_first_and_names_this_release() -> None:
    assert install_cell.main(check=True) == 0, "run: python tools/install_cell.py"
    assert install_cell.release_source().endswith(f"@{TAG}")
    source = install_cell.cell_source()
    assert "--no-deps" in source and "MAFKIT_SOURCE" in source


def test_one_version_everywhere() -> None:
    import mafkit

    assert mafkit.__version__ == VERSION
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["branch"] == TAG, "launch buttons must open the release, not main"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?:@|/)v(\d+\.\d+\.\d+)", readme))
    assert named == {VERSION}, f"README names versions {named}, the course is {VERSION}"


def test_launch_buttons_open_the_plain_copies() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["path_to_book"] == "notebooks"
    for chapter in ROOT.glob("chapters/[0-9]*.ipynb"):
        assert (ROOT / "notebooks" / "chapters" / chapter.name).exists(), chapter.name
