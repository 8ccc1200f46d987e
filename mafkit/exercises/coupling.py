"""Checkers of the open-ended coupling exercise: a coupling layer is a MAF layer whose
degrees take only two values."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._feedback import (
    _call,
    _close,
    _fail,
    _keeps_random_state,
    _no_graph_message,
    _parts,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
)
from .scratch import check_affine_in_own_variable, jacobian_rows

__all__ = ["check_coupling_degrees", "check_coupling_layer"]

_SPECS = [(2, 1), (3, 1), (4, 2), (5, 3), (3, 2), (6, 3)]


@_keeps_random_state
def check_coupling_degrees(coupling_degrees: Callable) -> None:
    """Check ``coupling_degrees(dim, split, width) -> (input degrees (D,), hidden (width,))``.

    The first ``split`` variables get degree 1 and the others degree 2; every hidden unit gets
    degree 1. With MADE's rules (hidden mask ``>=``, output mask ``>``) the first block is then
    conditioned on nothing and the second on the whole first block: a coupling layer.
    """
    name, fn = "coupling degrees", "coupling_degrees"
    for dim, split in _SPECS:
        width = 2 * dim
        case = f"D={dim}, split={split}, width={width}"
        result = _call(name, fn, case, coupling_degrees, dim, split, width)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "coupling_degrees must return a pair (input degrees, hidden degrees)", case)
        d_in = _tensor(result[0], "the input degrees", (dim,), name, case).long()
        d_hidden = _tensor(result[1], "the hidden degrees", (width,), name, case).long()
        want_in = torch.tensor([1] * split + [2] * (dim - split))
        if not torch.equal(d_in, want_in):
            if torch.equal(d_in, torch.arange(1, dim + 1)):
                message = (
                    "these are a MAF layer's degrees 1..D, one per variable: a coupling "
                    "layer has two blocks, degree 1 for the first split variables and "
                    "degree 2 for the rest"
                )
            elif torch.equal(d_in, 3 - want_in):
                message = (
                    "the blocks are swapped: the first split variables (the ones that pass "
                    "through) get degree 1, the rest degree 2"
                )
            elif torch.equal(d_in, want_in - 1):
                message = "the degrees are off by one: they are 1-based, use 1 and 2"
            else:
                message = "the input degrees must be 1 for the first split variables, 2 after"
            _fail(name, f"{message}; expected {want_in.tolist()}, got {d_in.tolist()}", case)
        if not torch.equal(d_hidden, torch.ones(width, dtype=torch.long)):
            if (d_hidden == 0).any():
                message = (
                    "a hidden unit of degree 0 sees no input, so the second block would "
                    "partly ignore the first; give every hidden unit degree 1"
                )
            elif (d_hidden >= 2).any():
                message = (
                    "a hidden unit of degree 2 sees the second block and feeds no output "
                    "(outputs of degree 2 need hidden degrees < 2): every hidden unit gets "
                    "degree 1"
                )
            else:
                message = "every hidden unit gets degree 1"
            _fail(name, message, case)
    _passed(name, len(_SPECS))


def _blocks(name: str, jac: Tensor, split: int, case: str) -> None:
    dim = jac.shape[1]
    nonzero = jac.abs().amax(0) > 0
    for i in range(dim):
        for j in range(dim):
            if i == j or not nonzero[i, j]:
                continue
            if i < split:
                _fail(
                    name,
                    f"z_{i} (first block) depends on x_{j}: the first block is conditioned on "
                    "nothing, so its outputs must see no hidden unit (output mask d_out > "
                    "d_hidden with degree 1 on both sides)",
                    case,
                )
            if j >= split:
                _fail(
                    name,
                    f"z_{i} depends on x_{j}, both in the second block: the second block "
                    "may only see the first (hidden units of degree 1 see degree-1 inputs "
                    "only)",
                    case,
                )
    for i in range(split, dim):
        if not nonzero[i, :split].any():
            _fail(
                name,
                f"z_{i} (second block) does not depend on the first block: its shift and "
                "log-scale must come from the network fed with x[:, :split]",
                case,
            )


@_keeps_random_state
def check_coupling_layer(coupling_layer: Callable, part: str | None = None) -> None:
    """Check ``CouplingLayer(dim, split, hidden)``: ``forward(x) -> (z, log|det dz/dx|)``,
    ``inverse(z) -> (x, log|det dx/dz|)``, a MAF layer with coupling degrees.

    With random weights (float64) the Jacobian must have the coupling's block structure, the
    log-det must be that of the Jacobian (autograd), and the inverse must be exact both ways
    with the opposite log-det. ``part`` limits the check to ``"forward"`` or ``"inverse"``.
    """
    parts, name = _parts("coupling layer", part, ("forward", "inverse"))
    cls = "CouplingLayer"
    with _seeded(909):
        data = [torch.randn(5, d, dtype=torch.float64) for d, _ in _SPECS]
    for (dim, split), x in zip(_SPECS, data):
        hidden = (2 * dim,)
        case = f"D={dim}, split={split}, hidden={hidden}"
        with _seeded(910):
            layer = _call(name, cls, case, coupling_layer, dim, split, hidden)
        if not isinstance(layer, nn.Module):
            _fail(name, f"{cls}(...) should build an nn.Module, got {type(layer).__name__}", case)
        layer = layer.double()
        with _seeded(911):
            _randomise(layer, 0.4)
        given = x.clone()
        result = _call(name, f"{cls}.forward", case, layer, given)
        _unchanged(name, f"{cls}.forward", "x", x, given, case)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "forward must return a pair (z, log_det)", case)
        z = _tensor(result[0], "z", (5, dim), name, case)
        log_det = _tensor(result[1], "the forward log_det", (5,), name, case)
        if "forward" in parts:
            if not (z.requires_grad and log_det.requires_grad):
                _fail(name, _no_graph_message(f"{cls}.forward", "the output"), case)
            jac = jacobian_rows(lambda v, layer=layer: layer(v)[0], x)
            _blocks(name, jac, split, case)
            check_affine_in_own_variable(name, layer, x, case)
            expected = torch.linalg.slogdet(jac)[1]
            if not _close(log_det.detach(), expected):
                message = "the forward log_det is not log|det dz/dx| of your map (autograd)"
                if _close(log_det.detach(), -expected):
                    message = (
                        "the forward log_det has the wrong sign: data to noise it is "
                        "-sum_i alpha_i"
                    )
                _fail(name, message, case)
        if "inverse" in parts:
            _coupling_inverse(name, layer, x, z.detach(), log_det.detach(), case)
    _passed(name, len(_SPECS))


def _coupling_inverse(
    name: str, layer: nn.Module, x: Tensor, z: Tensor, log_det: Tensor, case: str
) -> None:
    if not hasattr(layer, "inverse"):
        _fail(name, "your layer has no method inverse(z)", case)
    given = z.clone()
    result = _call(name, "CouplingLayer.inverse", case, layer.inverse, given)
    _unchanged(name, "CouplingLayer.inverse", "z", z, given, case)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        _fail(name, "inverse must return a pair (x, log_det)", case)
    x_back = _tensor(result[0], "the inverse's x", tuple(x.shape), name, case).detach()
    back_log_det = _tensor(result[1], "the inverse's log_det", (x.shape[0],), name, case)
    if not _close(x_back, x):
        split_ok = _close(x_back[:, :1], x[:, :1])
        _fail(
            name,
            "inverse(forward(x)) does not give back x"
            + (
                " in the second block: its shift and log-scale need the first block of "
                "x, which one pass on z does not know yet; recover the first block, then "
                "run the network on it (two passes, one per degree)"
                if split_ok
                else ": x_i = mu_i + exp(alpha_i) z_i"
            ),
            case,
        )
    if not _close(back_log_det.detach(), -log_det):
        _fail(name, "the inverse's log_det is not -(the forward log_det)", case)
    with _seeded(912):
        z_new = torch.randn_like(z)
    x_new = layer.inverse(z_new.clone())[0]
    if not _close(layer(x_new)[0].detach(), z_new):
        _fail(name, "forward(inverse(z)) does not give back z for a fresh z", case)
