"""The classroom pipeline end to end: `make assignments` regenerates the handed-out notebooks,
and otter-grader, run offline on this machine (`otter run`, no Docker), gives full marks to
the solutions, zero to the blank notebooks and part of the marks, with the checker's message
in the feedback, to one typical wrong answer per exercise."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The marker that opens every notebook's first cell (tools/install_cell.py).
INSTALL_MARKER = "# Install the course package mafkit where it is missing"
EXERCISES = ROOT / "exercises"
SOURCES = sorted((EXERCISES / "source").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.stem for p in SOURCES]
OTTER = pathlib.Path(sys.executable).parent / "otter"

# One typical wrong answer per exercise: (text in the solution, its replacement, a phrase the
# feedback must contain). Each breaks one part only, so the marks must be partial.
WRONG = {
    "01_masks": (
        "input_deg[order] = torch.arange(1, dim + 1)",
        "input_deg[order] = torch.arange(0, dim)",
        "the input degrees are off by one",
    ),
    "02_maf_inverse": (
        "return x, log_scale.sum(dim=1)",
        "return x, -log_scale.sum(dim=1)",
        "log_det has the wrong sign",
    ),
    "03_iaf_from_maf": (
        "maf.base.log_prob(z) - log_det",
        "maf.base.log_prob(z) + log_det",
        "the log-det term has the wrong sign",
    ),
    "04_context_path": (
        "mafkit.hidden_degrees(width, dim, lowest=0)",
        "mafkit.hidden_degrees(width, dim, lowest=1)",
        "Give some hidden units degree 0",
    ),
    "05_temporal_step": (
        "return log_p, model.advance(state, x_t)",
        "new = model.advance(state, x_t)\n"
        "    if isinstance(new, tuple):  # the LSTM's cell state dropped\n"
        "        new = (new[0], torch.zeros_like(new[1]))\n"
        "    return log_p, new",
        "the wrong cell state c",
    ),
    "06_batchnorm_logdet": (
        "mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)",
        "mean, var = x.mean(dim=0).detach(), x.var(dim=0, unbiased=False).detach()",
        "must stay in the graph",
    ),
    "07_maf_from_scratch": (
        "return x, log_scale.sum(dim=1)",
        "return x, -log_scale.sum(dim=1)",
        "the inverse's log_det has the sign of the forward one",
    ),
    "08_made_mog": (
        "return mog_log_prob(self.made(x), x, self.n_components)",
        "return mog_log_prob(self.made(x).detach(), x, self.n_components)",
        "log_prob carries no gradient",
    ),
    "09_coupling_layer": (
        "for _ in range(2):",
        "for _ in range(1):",
        "in the second block",
    ),
}


def load_assign():
    spec = importlib.util.spec_from_file_location("assign", EXERCISES / "assign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """`make assignments` into a temporary folder: (student notebooks, grader's files)."""
    tmp = tmp_path_factory.mktemp("assignments")
    students, grader = tmp / "students", tmp / "grader"
    load_assign().main(["--students", str(students), "--grader", str(grader)])
    return students, grader


def test_there_are_nine_exercises_and_the_wrong_answers_cover_them() -> None:
    assert len(NAMES) >= 9
    assert set(WRONG) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_handed_out_notebook_is_what_make_assignments_produces(
    name: str, built: tuple[pathlib.Path, pathlib.Path]
) -> None:
    students, _ = built
    fresh = json.loads((students / f"{name}.ipynb").read_text())
    stored = json.loads((EXERCISES / f"{name}.ipynb").read_text())
    assert fresh == stored, f"exercises/{name}.ipynb is out of date: run `make assignments`"


@pytest.mark.parametrize("name", NAMES)
def test_handed_out_notebook_has_stubs_and_no_solution_or_grading_test(name: str) -> None:
    notebook = nbformat.read(EXERCISES / f"{name}.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in notebook.cells)
    assert "raise NotImplementedError" in text
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "BEGIN QUESTION", "part="):
        assert marker not in text
    assert all(c.cell_type != "raw" for c in notebook.cells)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code[0].source.startswith(INSTALL_MARKER), "the first cell installs mafkit if missing"
    assert code[1].source.lstrip().startswith("import"), "the next code cell sets up"
    assert code[-1].source.startswith("exercises.check_"), "the notebook ends with its check"
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def answer_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and "# BEGIN SOLUTION" in c.source]


def grade(submission: pathlib.Path, autograder: pathlib.Path, output: pathlib.Path) -> dict:
    """Run `otter run` (no Docker, no network) and return {question: (score, max, feedback)}."""
    output.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = [str(OTTER), "run", "--no-logo", "-a", str(autograder), "-o", str(output)]
    subprocess.run([*command, str(submission)], check=True, env=env, capture_output=True)
    results = json.loads((output / "results.json").read_text())["tests"]
    return {
        t["name"]: (float(t["score"]), float(t["max_score"]), t["output"])
        for t in results
        if "max_score" in t
    }


@pytest.fixture(scope="module")
def graded(
    built: tuple[pathlib.Path, pathlib.Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], dict]:
    """Every exercise graded three times: its solution, its blank notebook, a wrong answer."""
    _, grader = built
    tmp = tmp_path_factory.mktemp("submissions")
    jobs = {}
    for name in NAMES:
        solved = grader / name / "autograder" / f"{name}.ipynb"
        old, new, _ = WRONG[name]
        wrong = nbformat.read(solved, as_version=4)
        cells = [c for c in answer_cells(wrong) if old in c.source]
        assert len(cells) == 1 and cells[0].source.count(old) == 1, name
        cells[0].source = cells[0].source.replace(old, new)
        for kind, notebook in (
            ("solution", nbformat.read(solved, as_version=4)),
            ("blank", nbformat.read(EXERCISES / f"{name}.ipynb", as_version=4)),
            ("wrong", wrong),
        ):
            folder = tmp / kind / name
            folder.mkdir(parents=True)
            nbformat.write(notebook, folder / f"{name}.ipynb")
            jobs[name, kind] = (folder / f"{name}.ipynb", grader / name / "autograder.zip")
    # Two gradings side by side: each runs one kernel with one thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            key: pool.submit(grade, sub, ag, sub.parent / "out") for key, (sub, ag) in jobs.items()
        }
        return {key: future.result() for key, future in futures.items()}


def total(result: dict) -> tuple[float, float]:
    return sum(s for s, _, _ in result.values()), sum(m for _, m, _ in result.values())


@pytest.mark.parametrize("name", NAMES)
def test_grader_gives_the_solution_full_marks(name: str, graded: dict) -> None:
    score, out_of = total(graded[name, "solution"])
    assert out_of > 0 and score == out_of, graded[name, "solution"]


@pytest.mark.parametrize("name", NAMES)
def test_grader_gives_the_blank_notebook_zero(name: str, graded: dict) -> None:
    result = graded[name, "blank"]
    assert total(result)[0] == 0
    assert all("you have not written" in feedback for _, _, feedback in result.values())


@pytest.mark.parametrize("name", NAMES)
def test_grader_gives_a_wrong_answer_part_marks_and_the_checkers_message(
    name: str, graded: dict
) -> None:
    result = graded[name, "wrong"]
    score, out_of = total(result)
    assert 0 < score < out_of, result
    feedback = "\n".join(f for s, m, f in result.values() if s < m)
    assert WRONG[name][2] in feedback
