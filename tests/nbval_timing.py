"""Pytest plugin: time and peak memory of each notebook checked by nbval.

Load it with ``-p tests.nbval_timing`` (the Makefile's ``nbval`` target does).
It only looks at nbval cell items; every other test is left alone.

For each notebook it reports the sum of the durations of all its cells (setup, call and
teardown, so kernel start-up and shutdown are included) and the peak resident memory of the
notebook's kernel process (``VmHWM`` in ``/proc/<pid>/status``; Linux only, shown as ``n/a``
elsewhere). It works under ``pytest-xdist``: the workers attach the numbers to
``report.user_properties`` and the controller adds them up.

The table is printed at the end of the run and written to ``_build/notebook-timing.md``.
A notebook over its time budget (30 s, Binder's single core included; the same for the
benchmark chapter) or over 1024 MB is flagged with a warning sign; this never fails the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

SECONDS_KEY = "nbval_timing_seconds"
PEAK_KEY = "nbval_timing_peak_mb"
NOTEBOOK_KEY = "nbval_timing_notebook"

TIME_BUDGET_S = 30.0
BENCHMARK_TIME_BUDGET_S = 30.0
MEMORY_BUDGET_MB = 1024.0
WARNING_MARK = "⚠"
REPORT_PATH = Path("_build") / "notebook-timing.md"


@dataclass
class NotebookStats:
    """Accumulated time (seconds) and peak memory (MB, or None if unknown) of one notebook."""

    seconds: float = 0.0
    peak_mb: float | None = None


def time_budget_s(notebook: str) -> float:
    """Return the time budget in seconds of the notebook at path ``notebook``."""
    if "benchmark" in Path(notebook).name.lower():
        return BENCHMARK_TIME_BUDGET_S
    return TIME_BUDGET_S


def over_budget(notebook: str, stats: NotebookStats) -> list[str]:
    """Return the reasons (possibly none) why a notebook is over its time or memory budget."""
    reasons = []
    budget = time_budget_s(notebook)
    if stats.seconds > budget:
        reasons.append(f"over {budget:.0f} s")
    if stats.peak_mb is not None and stats.peak_mb > MEMORY_BUDGET_MB:
        reasons.append(f"over {MEMORY_BUDGET_MB:.0f} MB")
    return reasons


def format_table(stats: dict[str, NotebookStats]) -> str:
    """Return a markdown table with one row per notebook and a total row."""
    lines = [
        "| notebook | seconds | peak MB | note |",
        "| --- | ---: | ---: | --- |",
    ]
    for notebook in sorted(stats):
        st = stats[notebook]
        peak = "n/a" if st.peak_mb is None else f"{st.peak_mb:.0f}"
        reasons = over_budget(notebook, st)
        note = f"{WARNING_MARK} " + ", ".join(reasons) if reasons else ""
        lines.append(f"| {notebook} | {st.seconds:.1f} | {peak} | {note} |")
    total = sum(st.seconds for st in stats.values())
    peaks = [st.peak_mb for st in stats.values() if st.peak_mb is not None]
    total_peak = f"{max(peaks):.0f} (max)" if peaks else "n/a"
    lines.append(f"| **total** ({len(stats)} notebooks) | {total:.1f} | {total_peak} | |")
    return "\n".join(lines)


def _kernel_pid(item: pytest.Item) -> int | None:
    """Return the process id of the kernel running this nbval cell's notebook, if known."""
    kernel = getattr(item.parent, "kernel", None)
    km = getattr(kernel, "km", None)
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None:
        process = getattr(provisioner, "process", None)
        pid = getattr(process, "pid", None)
    return pid


def _peak_rss_mb(pid: int | None) -> float | None:
    """Return the peak resident set size (VmHWM) of process ``pid`` in MB, or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # the value is in kB
    except OSError:
        return None
    return None


def _is_nbval_item(item: pytest.Item) -> bool:
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return False
    return isinstance(item, IPyNbCell)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if not _is_nbval_item(item):
        return
    report = outcome.get_result()
    report.user_properties.append((NOTEBOOK_KEY, item.nodeid.split("::")[0]))
    report.user_properties.append((SECONDS_KEY, call.duration))
    if call.when == "call":
        # VmHWM only grows, so the value after the last cell is the notebook's peak.
        # It must be read before teardown, which stops the kernel.
        report.user_properties.append((PEAK_KEY, _peak_rss_mb(_kernel_pid(item))))


class _Collector:
    """Adds up the reports; runs in the controller (or in the only process without xdist)."""

    def __init__(self) -> None:
        self.stats: dict[str, NotebookStats] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        notebook = props.get(NOTEBOOK_KEY)
        if notebook is None:
            return
        st = self.stats.setdefault(notebook, NotebookStats())
        st.seconds += float(props.get(SECONDS_KEY) or 0.0)
        peak = props.get(PEAK_KEY)
        if peak is not None:
            st.peak_mb = peak if st.peak_mb is None else max(st.peak_mb, peak)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if not self.stats:
            return
        table = format_table(self.stats)
        terminalreporter.section("notebook time and peak kernel memory")
        terminalreporter.write_line(table)
        path = Path(config.rootpath) / REPORT_PATH
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = (
                "# Notebook time and peak kernel memory\n\n"
                f"Budgets: {TIME_BUDGET_S:.0f} s per notebook "
                f"({BENCHMARK_TIME_BUDGET_S:.0f} s for benchmark notebooks), "
                f"{MEMORY_BUDGET_MB:.0f} MB peak kernel memory.\n\n"
            )
            path.write_text(header + table + "\n", encoding="utf-8")
            terminalreporter.write_line(f"(written to {os.path.relpath(path)})")
        except OSError as err:
            terminalreporter.write_line(f"could not write {path}: {err}")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: only attach numbers to reports
        return
    config.pluginmanager.register(_Collector(), "nbval-timing-collector")
