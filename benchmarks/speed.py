"""Time mafkit, zuko and nflows on the same MAF: log_prob, training step, sampling.

All libraries are timed in the same run, interleaved (one call of each library per round,
the starting library rotating), and each cell of the table is the median over rounds, so
that load from other processes on a shared machine hits every library alike.

    python benchmarks/speed.py            # full grid: D = 2, 8, 64; 1 and 2 threads
    python benchmarks/speed.py --quick    # fewer rounds (a smoke run, noisier)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import LIBRARIES, build, versions  # noqa: E402

BATCH = 4096
OPS = ("log_prob", "train_step", "sample")


def make_call(op: str, model: torch.nn.Module, x: torch.Tensor):
    """A no-argument callable that runs ``op`` once."""
    if op == "log_prob":

        def call():
            with torch.no_grad():
                model.log_prob(x)
    elif op == "train_step":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def call():
            loss = -model.log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    elif op == "sample":

        def call():
            with torch.no_grad():
                model.sample(x.shape[0])
    else:
        raise ValueError(op)
    return call


def time_op(op: str, dim: int, rounds: int, libraries: tuple[str, ...]) -> dict[str, float]:
    """Median seconds per call of ``op`` for each library, interleaved rounds."""
    torch.manual_seed(0)
    x = torch.randn(BATCH, dim)
    calls = {}
    for lib in libraries:
        torch.manual_seed(0)
        model = build(lib, dim)
        calls[lib] = make_call(op, model, x)
        calls[lib]()  # warm-up
    times: dict[str, list[float]] = {lib: [] for lib in libraries}
    for r in range(rounds):
        order = libraries[r % len(libraries) :] + libraries[: r % len(libraries)]
        for lib in order:
            start = time.perf_counter()
            calls[lib]()
            times[lib].append(time.perf_counter() - start)
    return {lib: statistics.median(t) for lib, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--before",
        type=Path,
        help="a folder holding an older mafkit renamed "
        "to the package mafkit_before; timed too, as 'mafkit-before'",
    )
    args = parser.parse_args()
    libs = tuple(args.libraries)
    if args.before:
        sys.path.insert(0, str(args.before))
        libs += ("mafkit-before",)

    info = {
        **versions(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "?",
        "batch": BATCH,
    }
    print("# " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        "| threads | D | op | "
        + " | ".join(f"{lib} (ms)" for lib in libs)
        + " | mafkit speed-up vs faster peer |"
    )
    print("|" + "---|" * (len(libs) + 4))
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dim in args.dims:
            for op in args.ops:
                slow = op == "sample" and dim >= 64
                rounds = (3 if slow else 7) if args.quick else (5 if slow else 21)
                medians = time_op(op, dim, rounds, libs)
                peers = [medians[lib] for lib in libs if lib in ("zuko", "nflows")]
                speedup = min(peers) / medians["mafkit"] if peers and "mafkit" in medians else None
                cells = " | ".join(f"{1e3 * medians[lib]:.2f}" for lib in libs)
                sp = f"{speedup:.2f}x" if speedup else "-"
                print(f"| {threads} | {dim} | {op} | {cells} | {sp} |", flush=True)
                results.append(
                    {
                        "threads": threads,
                        "dim": dim,
                        "op": op,
                        "rounds": rounds,
                        "median_s": medians,
                        "speedup": speedup,
                    }
                )
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
