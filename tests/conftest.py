"""Shared test set-up: every test starts from the same random state; shared helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mafkit


@pytest.fixture(autouse=True)
def _seeded() -> None:
    mafkit.set_seed(0)


def perturbed(module: nn.Module, scale: float = 0.3) -> nn.Module:
    """Add N(0, scale^2) noise to every parameter, in place, and return the module.

    Moves layers away from their near-identity initialisation, so that a check of a
    Jacobian, an inverse or a log-det has something to see.
    """
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def float64_inputs(
    dim: int, context_dim: int = 0, n: int = 3
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n random float64 points and, if ``context_dim``, n matching contexts (else None)."""
    x = torch.randn(n, dim, dtype=torch.float64)
    context = torch.randn(n, context_dim, dtype=torch.float64) if context_dim else None
    return x, context
