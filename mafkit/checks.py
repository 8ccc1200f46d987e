"""Numerical checks shared by the tests, the chapters and the exercise checkers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .masks import input_degrees

__all__ = [
    "jacobian",
    "log_det_error",
    "inverse_error",
    "autoregressive_violations",
    "missing_dependencies",
    "grid_2d",
    "integral_2d",
    "kl_2d",
]


def jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Autograd Jacobian of a map applied to one point at a time.

    Args:
        fn: maps (batch, dim_in) to (batch, dim_out) row by row.
        x: (batch, dim_in) points.

    Returns:
        (batch, dim_out, dim_in): entry [b, i, j] is d fn(x_b)_i / d x_bj.
    """
    return torch.stack(
        [torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], row) for row in x]
    )


def log_det_error(transform: torch.nn.Module, x: Tensor, context: Tensor | None = None) -> float:
    """Largest gap between a transform's reported log-det and slogdet of its Jacobian.

    Args:
        transform: has ``forward(x, context) -> (z, log_det)`` (a layer or a whole flow).
        x: (batch, dim) points; use float64 for a tight check.
        context: (batch, context_dim) or None.

    Returns:
        ``max_b |log_det_b - log|det dz/dx|_b|``.
    """
    _, log_det = transform(x, context)
    rows = []
    for b in range(x.shape[0]):
        c = None if context is None else context[b : b + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: transform(v[None], c)[0][0], x[b])
        rows.append(torch.linalg.slogdet(jac).logabsdet)
    return (log_det - torch.stack(rows)).abs().max().item()


def inverse_error(transform: torch.nn.Module, x: Tensor, context: Tensor | None = None) -> float:
    """``max |inverse(forward(x)) - x|`` plus the gap between the two log-dets' sum and 0."""
    z, log_det = transform(x, context)
    x_back, log_det_back = transform.inverse(z, context)
    return max((x_back - x).abs().max().item(), (log_det + log_det_back).abs().max().item())


def autoregressive_violations(jac: Tensor, order: Tensor, tol: float = 0.0) -> Tensor:
    """Where a Jacobian breaks the autoregressive property for ``order``.

    Args:
        jac: (..., dim, dim) Jacobian; entry [i, j] is d out_i / d x_j.
        order: (dim,) the model's order.
        tol: entries with absolute value at most tol count as zero.

    Returns:
        (dim, dim) bool; True where out_i depends on x_j although j does not come before i.
    """
    degree = input_degrees(order)
    allowed = degree[None, :] < degree[:, None]
    nonzero = (jac.abs() > tol).reshape(-1, *jac.shape[-2:]).any(dim=0)
    return nonzero & ~allowed


def missing_dependencies(jac: Tensor, order: Tensor, tol: float = 0.0) -> Tensor:
    """Where an output ignores a predecessor it should see (a full MADE sees them all).

    Args: as :func:`autoregressive_violations`.

    Returns:
        (dim, dim) bool; True where j comes before i but out_i never depends on x_j.
    """
    degree = input_degrees(order)
    allowed = degree[None, :] < degree[:, None]
    nonzero = (jac.abs() > tol).reshape(-1, *jac.shape[-2:]).any(dim=0)
    return allowed & ~nonzero


def grid_2d(
    bounds: tuple[tuple[float, float], tuple[float, float]],
    n: int = 200,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, float]:
    """Cell centres of an n x n grid over a box, and the area of one cell.

    Returns:
        (n * n, 2) points (x varies fastest, so ``.view(n, n)`` gives rows of constant y)
        and the cell area.
    """
    (x0, x1), (y0, y1) = bounds
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    xs = torch.linspace(x0 + hx / 2, x1 - hx / 2, n, dtype=dtype)
    ys = torch.linspace(y0 + hy / 2, y1 - hy / 2, n, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), hx * hy


@torch.no_grad()
def integral_2d(
    log_prob: Callable[[Tensor], Tensor],
    bounds: tuple[tuple[float, float], tuple[float, float]],
    n: int = 300,
) -> float:
    """Midpoint-rule integral of ``exp(log_prob)`` over a box (1 for a density whose mass
    lies inside the box)."""
    grid, area = grid_2d(bounds, n)
    return (torch.exp(log_prob(grid)).sum() * area).item()


@torch.no_grad()
def kl_2d(
    log_p: Callable[[Tensor], Tensor],
    log_q: Callable[[Tensor], Tensor],
    bounds: tuple[tuple[float, float], tuple[float, float]],
    n: int = 300,
) -> float:
    """KL(p || q) in nats by quadrature on a grid; p should hold its mass inside the box."""
    grid, area = grid_2d(bounds, n)
    lp, lq = log_p(grid), log_q(grid)
    p = torch.exp(lp)
    return (torch.where(p > 0, p * (lp - lq), torch.zeros_like(p)).sum() * area).item()
