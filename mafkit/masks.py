"""Degrees and connectivity masks of a MADE, as plain functions of integers and orders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_order", "input_degrees", "hidden_degrees", "hidden_mask", "output_mask"]


def check_order(order: Sequence[int] | Tensor | None, dim: int) -> Tensor:
    """Validate an autoregressive order and return it as a long tensor.

    Args:
        order: a permutation of ``0..dim-1`` (``order[k]`` is the k-th variable modelled),
            or ``None`` for the natural order.
        dim: number of variables D.

    Returns:
        (dim,) long tensor.

    Raises:
        ValueError: if ``order`` is not a permutation of ``0..dim-1``.
    """
    if order is None:
        return torch.arange(dim)
    order = torch.as_tensor(order)
    if order.dtype.is_floating_point or order.dtype == torch.bool:
        raise TypeError(f"order must hold integers, got dtype {order.dtype}")
    order = order.long()
    if order.shape != (dim,) or not torch.equal(order.sort().values, torch.arange(dim)):
        raise ValueError(
            f"order must be a permutation of 0..{dim - 1} with shape ({dim},), "
            f"got {order.tolist()}"
        )
    return order


def input_degrees(order: Tensor) -> Tensor:
    """Give each input variable its 1-based position in the autoregressive order.

    Args:
        order: (dim,) a permutation of 0..dim-1; ``order[k]`` is the k-th variable modelled.

    Returns:
        (dim,) long tensor; entry i is the degree of variable i, in 1..dim.

    Example:
        >>> input_degrees(torch.tensor([2, 0, 1])).tolist()
        [2, 3, 1]
    """
    degrees = torch.empty_like(order)
    degrees[order] = torch.arange(1, len(order) + 1)
    return degrees


def hidden_degrees(width: int, dim: int, lowest: int = 1) -> Tensor:
    """Give hidden units degrees that cycle through ``lowest..dim-1``.

    A unit of degree k may listen to inputs of degree <= k, so it can feed the conditionals
    of variables with degree > k. Cycling (rather than drawing at random) guarantees that
    every degree is present as soon as ``width >= dim - lowest``, so every conditional sees
    all of its predecessors.

    ``lowest=0`` adds units that see no input at all: in a conditional MADE they listen to
    the context only and are what lets the first variable's conditional depend on it.
    For ``dim = 1`` (and ``lowest = 1``) the range is empty; the units get degree 1 and
    feed nothing, so the single output is a function of the context and biases only.

    Args:
        width: number of hidden units, at least 1.
        dim: number of variables D.
        lowest: smallest degree, 0 or 1.

    Returns:
        (width,) long tensor of degrees.

    Example:
        >>> hidden_degrees(5, 3).tolist()
        [1, 2, 1, 2, 1]
        >>> hidden_degrees(4, 3, lowest=0).tolist()
        [0, 1, 2, 0]
    """
    span = max(dim - lowest, 1)
    return torch.arange(width) % span + lowest


def hidden_mask(degrees_out: Tensor, degrees_in: Tensor) -> Tensor:
    """Mask of a layer into hidden units: connect where ``d_out >= d_in``.

    Args:
        degrees_out: (n_out,) degrees of the layer's outputs.
        degrees_in: (n_in,) degrees of the layer's inputs.

    Returns:
        (n_out, n_in) float tensor of zeros and ones, shaped like ``nn.Linear.weight``.
    """
    return (degrees_out[:, None] >= degrees_in[None, :]).float()


def output_mask(degrees_out: Tensor, degrees_in: Tensor) -> Tensor:
    """Mask of the output layer: connect where ``d_out > d_in`` (strict).

    The strict inequality is what keeps variable d out of its own conditional.

    Args:
        degrees_out: (n_out,) degrees of the outputs (the degree of the variable each
            output parametrises).
        degrees_in: (n_in,) degrees of the last hidden layer.

    Returns:
        (n_out, n_in) float tensor of zeros and ones.
    """
    return (degrees_out[:, None] > degrees_in[None, :]).float()
