"""The notebook timing report (tests/nbval_timing.py) flags notebooks over budget."""

from __future__ import annotations

import pytest

# pytest puts tests/ on sys.path (no __init__.py, "prepend" import mode).
from nbval_timing import MEMORY_BUDGET_MB, WARNING_MARK, NotebookStats, format_table


def row_of(table: str, notebook: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {notebook} "))


@pytest.mark.parametrize(
    ("notebook", "seconds", "flagged"),
    [
        ("chapters/01_made.ipynb", 29.0, False),
        ("chapters/01_made.ipynb", 31.0, True),
        ("chapters/07_benchmarks.ipynb", 29.0, False),
        ("chapters/07_benchmarks.ipynb", 31.0, True),
    ],
)
def test_a_notebook_over_its_time_budget_is_flagged(
    notebook: str, seconds: float, flagged: bool
) -> None:
    table = format_table({notebook: NotebookStats(seconds=seconds, peak_mb=300.0)})
    assert (WARNING_MARK in row_of(table, notebook)) is flagged


def test_a_notebook_over_the_memory_budget_is_flagged() -> None:
    stats = {"chapters/02_maf.ipynb": NotebookStats(seconds=1.0, peak_mb=MEMORY_BUDGET_MB + 1)}
    assert "MB" in row_of(format_table(stats), "chapters/02_maf.ipynb").split(WARNING_MARK)[1]


def test_the_total_row_adds_up_the_seconds_of_all_notebooks() -> None:
    stats = {"a.ipynb": NotebookStats(1.0, 100.0), "b.ipynb": NotebookStats(2.5, None)}
    total = row_of(format_table(stats), "**total**")
    assert "| 3.5 |" in total
    assert "100 (max)" in total
