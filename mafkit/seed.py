"""One seeding helper for notebooks, tests and benchmarks."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["set_seed"]


def set_seed(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's generators; returns nothing (so prints nothing).

    Args:
        seed: the seed for all three generators.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
