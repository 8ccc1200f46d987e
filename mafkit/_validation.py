"""Argument checks shared by the public entry points (clear errors, never a silent broadcast)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_positive_int", "check_hidden", "check_points", "check_context"]


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise with a clear message."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_hidden(hidden: object) -> tuple[int, ...]:
    """Return the hidden widths as a tuple of positive ints (a single int means one layer)."""
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, (tuple, list)) or len(hidden) == 0:
        raise ValueError(f"hidden must be a non-empty tuple of layer widths, got {hidden!r}")
    return tuple(check_positive_int(h, "each hidden width") for h in hidden)


def check_points(x: object, dim: int, name: str = "x") -> Tensor:
    """Check that ``x`` is a finite floating tensor of shape (batch, dim)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (batch, {dim}), got {tuple(x.shape)}")
    if x.numel() and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _all_finite(x: Tensor) -> bool:
    """Whether every entry of ``x`` is finite (True where the values cannot be read)."""
    # One min/max reduction (NaN propagates into it) costs far less than isfinite(x).all(),
    # which builds a boolean tensor of x's size on every call.
    low, high = torch.aminmax(x)
    finite = torch.isfinite(low) & torch.isfinite(high)
    try:
        return bool(finite)
    except RuntimeError:
        # Under torch.func.vmap a value cannot decide a Python branch: the check is skipped
        # there (shapes are still checked), so vmap(jacrev(flow.forward)) works.
        return True


def check_context(
    context: Tensor | None, context_dim: int, batch: int | None, name: str = "context"
) -> Tensor | None:
    """Check that ``context`` is given exactly when the model is conditional.

    Args:
        context: (batch, context_dim) or None.
        context_dim: the model's context size; 0 means unconditional.
        batch: the number of rows the context must have, or None to accept any.
    """
    if context_dim == 0:
        if context is not None:
            raise ValueError(
                f"this model is unconditional (context_dim=0) but a {name} was given; "
                "build it with context_dim > 0 to condition on it"
            )
        return None
    if context is None:
        raise ValueError(
            f"this model is conditional (context_dim={context_dim}): pass {name} of shape "
            f"(batch, {context_dim})"
        )
    rows = "batch" if batch is None else str(batch)
    if not isinstance(context, Tensor) or context.dim() != 2 or context.shape[1] != context_dim:
        shape = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
        raise ValueError(f"{name} must have shape ({rows}, {context_dim}), got {shape}")
    if batch is not None and context.shape[0] != batch:
        raise ValueError(
            f"{name} must have shape ({rows}, {context_dim}) to match the {batch} points, "
            f"got {tuple(context.shape)}"
        )
    return check_points(context, context_dim, name)
