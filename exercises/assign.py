"""Build the handed-out notebooks and the grader's files from the sources.

Each notebook in ``exercises/source/`` holds one exercise with its solutions,
its grading tests and the points of each part, in Otter Assign's format (raw
cells ``# BEGIN QUESTION``, ``# BEGIN SOLUTION``, ``# BEGIN TESTS``; see the
teachers' guide, ``exercises/README.md``). For each of them this script runs
``otter assign`` and writes

- the student notebook to ``exercises/NN_name.ipynb``: solutions replaced by
  ``raise NotImplementedError``, grading tests removed, no outputs;
- the grader's version to ``_build/assignments/NN_name/``: ``autograder.zip``
  (what ``otter run`` grades with) and ``autograder/NN_name.ipynb`` (the
  notebook with solutions).

Run it with ``make assignments``; ``--students DIR --grader DIR`` write
elsewhere (the tests use that to compare a fresh build with the stored student
notebooks).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import re
import shutil
import tempfile

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "source"
# The line otter leaves where a solution was.
PROMPT = re.compile(r"^(\s*)\.\.\.$")
OTTER_TAGS = {"otter_answer_cell", "otter_assign_solution_cell"}


def sources(names: list[str] | None = None) -> list[pathlib.Path]:
    paths = sorted(SOURCE.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names]
    return paths


def student_version(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Otter's student notebook, made fit to hand out: stubs that raise, no
    outputs, no execution records, only the metadata a reader or ``otter run``
    needs."""
    for cell in notebook.cells:
        metadata = {}
        tags = cell.metadata.get("tags", [])
        tags = [t for t in tags if t not in OTTER_TAGS]
        if tags:
            metadata["tags"] = tags
        cell.metadata = metadata
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        lines = cell.source.split("\n")
        stub = r"\1raise NotImplementedError"
        cell.source = "\n".join(PROMPT.sub(stub, line) for line in lines)
    notebook.metadata = {
        "kernelspec": notebook.metadata["kernelspec"],
        "language_info": {"name": "python"},
        "otter": {"assignment_name": notebook.metadata.otter.assignment_name},
    }
    return notebook


def otter_assign(*args: object, **kwargs: object) -> None:
    """``otter assign`` in this process (one import of otter for all the
    notebooks); its log is shown only if it fails."""
    from otter.assign import main

    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            main(*args, **kwargs)
    except Exception:
        print(log.getvalue())
        raise


def assign(
    source: pathlib.Path, students: pathlib.Path, grader: pathlib.Path
) -> None:
    """Run otter assign on one source notebook and put its outputs in place."""
    name = source.stem
    with tempfile.TemporaryDirectory() as tmp:
        result = pathlib.Path(tmp) / name
        shown = source.relative_to(HERE.parent)
        print(f"+ otter assign --no-pdfs --no-run-tests {shown} ...")
        otter_assign(str(source), str(result), no_pdfs=True, no_run_tests=True)
        student = result / "student" / f"{name}.ipynb"
        notebook = nbformat.read(student, as_version=4)
        nbformat.write(student_version(notebook), students / f"{name}.ipynb")
        target = grader / name
        if target.exists():
            shutil.rmtree(target)
        (zip_file,) = (result / "autograder").glob("*.zip")
        shutil.copytree(result / "autograder", target / "autograder")
        shutil.copy(zip_file, target / "autograder.zip")
        for stamped in (target / "autograder").glob("*.zip"):
            stamped.unlink()  # named with the time; autograder.zip is its copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="exercises (default: all)")
    parser.add_argument("--students", type=pathlib.Path, default=HERE)
    grader = HERE.parent / "_build" / "assignments"
    parser.add_argument("--grader", type=pathlib.Path, default=grader)
    args = parser.parse_args(argv)
    args.students.mkdir(parents=True, exist_ok=True)
    args.grader.mkdir(parents=True, exist_ok=True)
    for source in sources(args.names):
        assign(source, args.students, args.grader)
    print(f"student notebooks in {args.students}")
    print(f"grader's files in {args.grader}")


if __name__ == "__main__":
    main()
