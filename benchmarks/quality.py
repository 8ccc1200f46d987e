"""Fit the same MAF with mafkit, zuko and nflows and compare the quality reached.

* digits: sklearn's 8x8 digits (``mafkit.data.load_digits(alpha=0.05, seed=0)``), Adam 1e-3,
  batch 128, early stopping on the validation set with patience 20 (at most 1000 epochs);
  score: test negative log-likelihood in nats per image in [0, 17)^64, the logit
  preprocessing's Jacobian included (``digits.to_pixel_space``).
* 2-D: KL(p || q) in nats by quadrature (``mafkit.checks.kl_2d``) between an exact target
  (``mafkit.data.toy_density("banana" / "ring")``) and the flow, after a fixed budget:
  8192 target samples, batch 256, Adam 1e-3, 60 epochs (1920 steps), no early stopping.

Every library is trained by the same loop (``mafkit.fit``, gradient norm clipped at 5).

    python benchmarks/quality.py                                  # everything
    python benchmarks/quality.py --task digits --libraries zuko   # one part
    python benchmarks/quality.py --task 2d --seeds 0 1 2 3 4      # several seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import LIBRARIES, build, versions  # noqa: E402

import mafkit  # noqa: E402


def digits_nll(library: str, seed: int = 0, fresh_noise: bool = False) -> dict:
    """Train on the digits and return the test NLL (nats per image, pixel space).

    With ``fresh_noise`` the training images get new dequantisation noise every epoch.
    """
    digits = mafkit.data.load_digits(alpha=0.05, seed=0)
    mafkit.set_seed(seed)
    model = build(library, 64)
    start = time.perf_counter()
    history = mafkit.fit(
        model,
        digits.train,
        digits.val,
        epochs=1000,
        batch_size=128,
        lr=1e-3,
        patience=20,
        resample=digits.redequantise_train if fresh_noise else None,
    )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        log_prob = digits.to_pixel_space(model.log_prob(digits.test), digits.test)
    return {
        "test_nll": -log_prob.mean().item(),
        "test_nll_se": (log_prob.std() / len(log_prob) ** 0.5).item(),
        "best_epoch": history.best_epoch,
        "epochs_run": history.epochs_run,
        "fit_seconds": seconds,
        "fresh_noise": fresh_noise,
    }


def kl_2d(
    library: str,
    target: str,
    seed: int = 0,
    scale_bound: float | None = None,
    epochs: int = 60,
) -> dict:
    """Train on samples of a 2-D target for a fixed budget and return KL(p || q)."""
    density = mafkit.data.toy_density(target)
    data = density.sample(8192, generator=torch.Generator().manual_seed(seed))
    mafkit.set_seed(seed)
    model = build(library, 2, scale_bound)
    start = time.perf_counter()
    mafkit.fit(model, data, epochs=epochs, batch_size=256, lr=1e-3, patience=None)
    seconds = time.perf_counter() - start
    kl = mafkit.checks.kl_2d(density.log_prob, model.log_prob, density.bounds)
    return {"kl": kl, "fit_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("all", "digits", "2d"), default="all")
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fresh-noise", action="store_true", help="digits: new dequantisation noise every epoch"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--json", type=Path, help="append one JSON line per result here")
    parser.add_argument(
        "--scale-bounds",
        type=float,
        nargs="+",
        help="2-D only: one mafkit run per log-scale bound (paired with the peers per seed)",
    )
    parser.add_argument("--epochs", type=int, default=60, help="2-D training budget in epochs")
    parser.add_argument(
        "--targets", nargs="+", default=["banana", "ring"], choices=["banana", "ring"]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "# " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f", threads {args.threads}",
        flush=True,
    )

    def report(row: dict) -> None:
        print(json.dumps(row), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(row) + "\n")

    variants = [(library, None) for library in args.libraries]
    if args.scale_bounds:
        variants = [(lib, None) for lib in args.libraries if lib != "mafkit"]
        variants += [("mafkit", bound) for bound in args.scale_bounds]
    for seed in args.seeds:
        for library, bound in variants:
            row = {"library": library, "seed": seed}
            if bound is not None:
                row["scale_bound"] = bound
            if args.task in ("all", "2d"):
                for target in args.targets:
                    kl = kl_2d(library, target, seed, bound, args.epochs)
                    report({**row, "task": f"kl_{target}", "epochs": args.epochs, **kl})
            if args.task in ("all", "digits") and bound is None:
                result = digits_nll(library, seed, args.fresh_noise)
                report({**row, "task": "digits", **result})


if __name__ == "__main__":
    main()
