"""environment.yml (conda, Binder) and pyproject.toml (pip) must describe the same environment."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]

# Conda packages whose name differs from the pip name, and conda-only helpers.
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-cpu": "torch"}
CONDA_ONLY = {"python", "pip", "cpuonly"}


def conda_name(spec: str) -> str:
    """Return the pip-style package name of a conda match spec such as 'pytorch=2.*=cpu*'."""
    name = re.split(r"[\s=<>!~\[]", spec.strip(), maxsplit=1)[0]
    name = canonicalize_name(name)
    return CONDA_TO_PIP.get(name, name)


def environment_specs() -> tuple[list[str], list[str]]:
    """Return the conda specs and the pip specs listed in environment.yml."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            conda.append(dep)
    return conda, pip


def pyproject_requirements() -> list[Requirement]:
    """Return the runtime dependencies and the course, book and test extras of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    specs = project["dependencies"] + extras["course"] + extras["book"] + extras["test"]
    return [Requirement(spec) for spec in specs]


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    conda, pip = environment_specs()
    env_names = {conda_name(s) for s in conda} - CONDA_ONLY
    env_names |= {canonicalize_name(Requirement(s).name) for s in pip}
    project_names = {canonicalize_name(r.name) for r in pyproject_requirements()}
    assert env_names == project_names, (
        f"only in environment.yml: {sorted(env_names - project_names)}; "
        f"only in pyproject.toml: {sorted(project_names - env_names)}"
    )


def test_environment_yml_uses_the_pins_of_pyproject_for_pip_packages() -> None:
    _, pip = environment_specs()
    pinned = {canonicalize_name(r.name): r.specifier for r in pyproject_requirements()}
    for spec in pip:
        req = Requirement(spec)
        assert req.specifier == pinned[canonicalize_name(req.name)], spec


def test_environment_yml_asks_conda_for_a_cpu_only_pytorch() -> None:
    conda, _ = environment_specs()
    torch_specs = [s for s in conda if conda_name(s) == "torch"]
    assert len(torch_specs) == 1
    spec = torch_specs[0]
    assert "cpu" in spec or "cpuonly" in conda, f"{spec!r} may pull a CUDA build"


@pytest.mark.parametrize("spec", ["pytorch=2.*=cpu*", "pytorch >=2.1 cpu*", "pytorch-cpu"])
def test_conda_name_maps_pytorch_to_torch(spec: str) -> None:
    assert conda_name(spec) == "torch"
