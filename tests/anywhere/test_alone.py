"""Every notebook a student opens runs when copied alone into an empty folder of a fresh Python.

The fresh environment has what Colab has (torch, numpy, matplotlib, scikit-learn, scipy) and no
mafkit. Each notebook's first cell must then install mafkit by itself; the tests point that
cell at a wheel built from this checkout (``MAFKIT_SOURCE``), because the release address cannot
be reached from here. The time and peak memory of each run go to
``_build/notebook-timing-alone.md`` (one thread, as on Binder); the budget is 30 s a notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The chapters as students open them, and the exercises' source notebooks with their solutions
# (a student's notebook has gaps, so it cannot run to the end; its first cell is the same).
NOTEBOOKS = sorted((ROOT / "notebooks" / "chapters").glob("*.ipynb")) + sorted(
    (ROOT / "exercises" / "source").glob("[0-9]*.ipynb")
)
REPORT = ROOT / "_build" / "notebook-timing-alone.md"
# What Colab and Binder provide besides mafkit; torch from the same pin as `make install`.
STUDENT_PACKAGES = ["numpy", "matplotlib", "scikit-learn", "scipy", "ipykernel", "nbclient"]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")

RUNNER = r"""
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient

path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
start = time.perf_counter()
client = NotebookClient(
    notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}
)
client.execute()
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))
"""


# The fresh environment must not see this checkout through PYTHONPATH.
CLEAN_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", CLEAN_ENV)
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(folder),
            str(ROOT),
        ]
    )
    (built,) = folder.glob("mafkit-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A new virtual environment with the students' packages and without mafkit."""
    folder = tmp_path_factory.mktemp("fresh-env")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", *TORCH_SPEC.split(), *STUDENT_PACKAGES])
    return python


@pytest.fixture(scope="module")
def report():
    rows: list[str] = []
    yield rows
    REPORT.parent.mkdir(exist_ok=True)
    header = "| notebook | seconds (1 thread) | peak MB |\n| --- | ---: | ---: |\n"
    REPORT.write_text(
        "# Notebooks run alone in a fresh environment\n\n" + header + "\n".join(rows) + "\n"
    )
    print("\n" + header + "\n".join(rows))


def test_there_are_notebooks_for_students() -> None:
    assert len(NOTEBOOKS) >= 13, f"expected chapters and exercise sources, found {NOTEBOOKS}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_runs_alone(
    notebook: Path, wheel: Path, fresh_python: Path, tmp_path: Path, report
) -> None:
    # Each notebook must install mafkit itself, so take away what an earlier one installed.
    subprocess.run(
        [str(fresh_python), "-m", "pip", "uninstall", "--yes", "--quiet", "mafkit"],
        capture_output=True,
        env=CLEAN_ENV,
    )
    missing = run(
        [
            str(fresh_python),
            "-c",
            "import importlib.util as u; print(u.find_spec('mafkit') is None)",
        ],
        cwd=tmp_path,
    )
    assert missing.stdout.strip() == "True"

    shutil.copy(notebook, tmp_path / notebook.name)
    (tmp_path / "run.py").write_text(RUNNER)
    env = {
        "PATH": f"{fresh_python.parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "MAFKIT_SOURCE": str(wheel),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [str(fresh_python), "run.py", notebook.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        result.returncode == 0
    ), f"{notebook.name} failed when run alone:\n{result.stderr[-3000:]}"
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    seconds, peak_mb = measured["seconds"], measured["peak_mb"]
    name = f"{notebook.parent.name}/{notebook.name}"
    report.append(f"| {name} | {seconds:.1f} | {peak_mb:.0f} |")

    installed = run(
        [str(fresh_python), "-c", "import mafkit; print(mafkit.__file__)"], cwd=tmp_path
    )
    assert (
        "site-packages" in installed.stdout
    ), "the install cell did not install mafkit from the wheel"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".ipynb") == [notebook.name]
