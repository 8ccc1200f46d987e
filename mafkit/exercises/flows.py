"""Checkers of the flow exercises: invert a MAF layer, and sample an IAF built from a MAF."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..flows import IAF, MAF
from ..transforms import MaskedAffineAutoregressive
from ._feedback import (
    TOL,
    _call,
    _check_gradients,
    _close,
    _diagnose,
    _fail,
    _forbid,
    _forbidden,
    _keeps_random_state,
    _orders,
    _parts,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
    _uses_any,
)

__all__ = ["check_maf_inverse", "check_iaf_from_maf"]


# ---------------------------------------------------------------- 2. MAF inverse


def _layer_cases(seed: int) -> list[tuple[MaskedAffineAutoregressive, Tensor, Tensor | None, str]]:
    """MAF layers (float64, random weights) with noise z and optional context."""
    dims = [3, 1, 2, 3, 5, 2, 5, 8, 8, 4, 3, 6]
    cases = []
    with _seeded(seed):
        for i, (dim, order) in enumerate(zip(dims, _orders(dims))):
            context_dim = 2 if i >= 10 else 0
            layer = MaskedAffineAutoregressive(dim, (16,), context_dim, order).double()
            _randomise(layer, 0.5)
            z = torch.randn(6, dim, dtype=torch.float64)
            context = torch.randn(6, context_dim, dtype=torch.float64) if context_dim else None
            text = f"D={dim}, order={order.tolist()}" + (", with context" if context_dim else "")
            cases.append((layer, z, context, text))
    return cases


def _passes(
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    n: int,
    step: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> tuple[Tensor, list[Tensor]]:
    """Run ``n`` MADE passes from x = 0 with an update rule; return x and each pass's log-scale."""
    x, scales = torch.zeros_like(z), []
    for _ in range(n):
        shift, log_scale = layer.shift_and_log_scale(x, context)
        x = step(shift, log_scale, z)
        scales.append(log_scale)
    return x, scales


def _index_loop(layer: MaskedAffineAutoregressive, z: Tensor, context: Tensor | None) -> Tensor:
    x = torch.zeros_like(z)
    for i in range(z.shape[1]):
        shift, log_scale = layer.shift_and_log_scale(x, context)
        x[:, i] = shift[:, i] + torch.exp(log_scale[:, i]) * z[:, i]
    return x


@_keeps_random_state
def check_maf_inverse(maf_inverse: Callable, part: str | None = None) -> None:
    """Check ``maf_inverse(layer, z, context=None) -> (x, log_det)`` of a MAF layer.

    ``x`` must be the point with ``layer.forward(x) == z`` (computed with D sequential passes of
    ``layer.shift_and_log_scale``) and ``log_det`` must be ``log|det dx/dz| = sum_i alpha_i``,
    shape (batch,). ``part`` limits the check to ``"x"`` or ``"log_det"``. The answer must leave
    ``z`` and the layer unchanged and keep gradients flowing to ``z`` and the layer's weights.
    """
    parts, name = _parts("MAF inverse", part, ("x", "log_det"))
    fn = "maf_inverse"
    cases = _layer_cases(202)
    no_inverse = (
        "do not call layer.inverse, it is the answer: write the loop "
        "with layer.shift_and_log_scale"
    )
    for k, (layer, z, context, case) in enumerate(cases):
        dim, batch = z.shape[1], z.shape[0]
        student_layer = _forbid(layer, "inverse", name, no_inverse)
        given = z.clone()
        given_context = None if context is None else context.clone()
        result = _call(name, fn, case, maf_inverse, student_layer, given, given_context)
        _unchanged(name, fn, "z", z, given, case)
        if context is not None:
            _unchanged(name, fn, "context", context, given_context, case)
        _unchanged(name, fn, "the layer", layer, student_layer, case)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "maf_inverse must return a pair (x, log_det)", case)
        x = _tensor(result[0], "x", (batch, dim), name, case)
        log_det = torch.as_tensor(result[1])
        with torch.no_grad():
            x_ref, log_det_ref = layer.inverse(z, context)
            if "x" in parts and not _close(x.detach(), x_ref):
                _maf_inverse_wrong_x(name, layer, z, context, x.detach(), x_ref, case)
        if "log_det" in parts:
            if tuple(log_det.shape) == (batch, dim):
                _fail(
                    name,
                    "log_det has shape (batch, D): sum the log-scales over the variables, "
                    "log_det has shape (batch,)",
                    case,
                )
            log_det = _tensor(log_det, "log_det", (batch,), name, case)
            if not _close(log_det.detach(), log_det_ref):
                with torch.no_grad():
                    _maf_inverse_wrong_log_det(
                        name, layer, z, context, log_det.detach(), log_det_ref, case
                    )
        if k in (3, 10):  # with gradients: to z, to the context and to the weights
            _maf_inverse_gradients(name, fn, maf_inverse, layer, z, context, parts, case)
    _passed(name, len(cases))


def _maf_inverse_gradients(
    name: str,
    fn: str,
    maf_inverse: Callable,
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    parts: set[str],
    case: str,
) -> None:
    student_layer = _forbid(layer, "inverse", name, "do not call layer.inverse")
    z = z.clone().requires_grad_()
    context = None if context is None else context.clone().requires_grad_()
    inputs = [z, *([] if context is None else [context]), *student_layer.parameters()]
    x, log_det = _call(name, fn, case, maf_inverse, student_layer, z, context)
    x_ref, log_det_ref = type(layer).inverse(student_layer, z, context)
    case = f"{case}, with gradients"
    if "x" in parts:
        _check_gradients(name, fn, "x", x, x_ref, inputs, case)
    if "log_det" in parts:
        _check_gradients(name, fn, "log_det", log_det, log_det_ref, inputs, case)


def _maf_inverse_wrong_log_det(
    name: str,
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    log_det: Tensor,
    log_det_ref: Tensor,
    case: str,
) -> None:
    dim = z.shape[1]
    _, scales = _passes(layer, z, context, dim, lambda m, s, z: m + torch.exp(s) * z)
    message = (
        _diagnose(
            log_det,
            log_det_ref,
            [
                (
                    -log_det_ref,
                    "log_det has the wrong sign: noise to data, log|det dx/dz| = "
                    "+sum_i alpha_i (the forward pass has -sum_i alpha_i)",
                ),
                (
                    torch.zeros_like(log_det_ref),
                    "log_det is zero: the affine map scales "
                    "variable i by exp(alpha_i), add sum_i alpha_i",
                ),
                (
                    scales[0].sum(1),
                    "log_det uses the log-scales of the first pass; use those of "
                    "the last pass, computed from the finished x",
                ),
                (
                    sum(scales).sum(1),
                    "log_det adds up the log-scales of every pass; only the "
                    "last pass's log-scales (from the finished x) count",
                ),
            ],
        )
        or "log_det is not log|det dx/dz| = sum_i alpha_i with alpha from the final pass"
    )
    _fail(name, message, case)


def _maf_inverse_wrong_x(
    name: str,
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    x: Tensor,
    x_ref: Tensor,
    case: str,
) -> None:
    dim, order = z.shape[1], layer.order
    natural = torch.equal(order, torch.arange(dim))
    good = lambda m, s, z: m + torch.exp(s) * z  # noqa: E731
    mistakes = [
        (
            _passes(layer, z, None, dim, good)[0] if context is not None else None,
            "x ignores the context: pass `context` on to layer.shift_and_log_scale",
        ),
        (
            _passes(layer, z, context, dim, lambda m, s, z: (z - m) * torch.exp(-s))[0],
            "you used the data-to-noise formula z = (x - mu) exp(-alpha); solve it for x instead: "
            "x = mu + exp(alpha) z",
        ),
        (
            _passes(layer, z, context, dim, lambda m, s, z: m + torch.exp(-s) * z)[0],
            "the scale is wrong: z = (x - mu) exp(-alpha) gives x = mu + exp(alpha) z, "
            "not exp(-alpha)",
        ),
        (
            None if natural else _index_loop(layer, z, context),
            f"x is built in the index order 0..D-1, but this layer's order is {order.tolist()}: "
            "recompute all of x in each of the D passes (or loop over layer.order)",
        ),
        (
            _passes(layer, z, context, 1, good)[0] if dim > 1 else None,
            "only the first variable of the order is right: one MADE pass is not enough, repeat "
            "it D times, feeding the current x back in",
        ),
        (
            _passes(layer, z, context, dim - 1, good)[0] if dim > 2 else None,
            "the last variable of the order is wrong: you need D passes (after pass k the first k "
            "variables of the order are exact)",
        ),
    ]
    message = _diagnose(x, x_ref, mistakes)
    if not message:
        wrong = ~torch.isclose(x.double(), x_ref, rtol=TOL, atol=TOL).all(0)
        k = int(torch.nonzero(wrong[order])[0])
        message = (
            f"x does not invert the layer (layer(x)[0] should give back z): variable "
            f"{int(order[k])}, position {k} in the order, is the first wrong one"
        )
    _fail(name, message, case)


# ---------------------------------------------------------------- 3. IAF from MAF


@_keeps_random_state
def check_iaf_from_maf(iaf_sample: Callable, part: str | None = None) -> None:
    """Check ``iaf_sample(maf, z) -> (x, log_q)``: the IAF sampling pass built from a MAF's layers.

    ``x`` is the MAF's data-to-noise map applied to the noise ``z`` (each layer's parallel
    forward pass, first layer first) and ``log_q = maf.base.log_prob(z) - log|det dx/dz|``,
    which is what ``IAF.from_maf(maf).sample_and_log_prob`` computes. ``part`` limits the check
    to ``"x"`` or ``"log_q"``. ``maf.inverse``, ``maf.log_prob`` and ``mafkit.IAF`` are refused.
    """
    parts, name = _parts("IAF from MAF", part, ("x", "log_q"))
    fn = "iaf_sample"
    shortcut = (
        "do not use maf.inverse, maf.log_prob or mafkit.IAF: the IAF is the point of the "
        "exercise; use maf.transforms and maf.base"
    )
    used = _uses_any(iaf_sample, {"mafkit.IAF": IAF})
    if used:
        _fail(name, f"your code uses {used}: {shortcut}", "before any case")
    specs = [
        (2, 2, "reversed", "normal"),
        (1, 1, "reversed", "normal"),
        (1, 3, "reversed", "normal"),
        (3, 2, "random", "normal"),
        (5, 3, "random", "normal"),
        (8, 2, "reversed", "normal"),
        (4, 1, "random", "normal"),
        (3, 3, "random", "mog"),
        (2, 2, "random", "mog"),
        (6, 3, "reversed", "normal"),
    ]
    with _seeded(303):
        cases = []
        for dim, n_layers, order, base in specs:
            maf = MAF(dim, n_layers, (12,), order=order, base=base, n_components=3).double()
            _randomise(maf, 0.4)
            cases.append(
                (
                    maf,
                    torch.randn(5, dim, dtype=torch.float64),
                    f"D={dim}, {n_layers} layer(s), order='{order}', base='{base}'",
                )
            )
    targets = [(IAF, "from_maf"), (IAF, "__init__")]
    for k, (maf, u, case) in enumerate(cases):
        student_maf = _forbid(_forbid(maf, "inverse", name, shortcut), "log_prob", name, shortcut)
        given = u.clone()
        with _forbidden(name, targets, shortcut):
            result = _call(name, fn, case, iaf_sample, student_maf, given)
        _unchanged(name, fn, "z", u, given, case)
        _unchanged(name, fn, "the MAF", maf, student_maf, case)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "iaf_sample must return a pair (x, log_q)", case)
        x = _tensor(result[0], "x", tuple(u.shape), name, case).detach()
        log_q = _tensor(result[1], "log_q", (u.shape[0],), name, case).detach()
        with torch.no_grad():
            _iaf_compare(name, maf, u, x, log_q, parts, case)
        if k in (3, 7):
            student_maf = _forbid(
                _forbid(maf, "inverse", name, shortcut), "log_prob", name, shortcut
            )
            u_grad = u.clone().requires_grad_()
            inputs = [u_grad, *student_maf.parameters()]
            with _forbidden(name, targets, shortcut):
                x, log_q = _call(name, fn, case, iaf_sample, student_maf, u_grad)
            x_ref, log_det = IAF.from_maf(student_maf).inverse(u_grad)
            log_q_ref = student_maf.base.log_prob(u_grad) - log_det
            where = f"{case}, with gradients"
            if "x" in parts:
                _check_gradients(name, fn, "x", x, x_ref, inputs, where)
            if "log_q" in parts:
                _check_gradients(name, fn, "log_q", log_q, log_q_ref, inputs, where)
    _passed(name, len(cases))


def _iaf_compare(
    name: str, maf: MAF, u: Tensor, x: Tensor, log_q: Tensor, parts: set[str], case: str
) -> None:
    x_ref, log_det = IAF.from_maf(maf).inverse(u)  # log|det dx/dz|
    if "x" in parts and not _close(x, x_ref):
        rev = u
        for t in reversed(maf.transforms):
            rev, _ = t(rev)
        message = (
            _diagnose(
                x,
                x_ref,
                [
                    (
                        maf.inverse(u)[0],
                        "you ran the layers' inverse, which is MAF sampling "
                        "(sequential); the IAF samples with each layer's parallel "
                        "forward pass, x = maf.transforms[k](x)[0]",
                    ),
                    (
                        rev,
                        "the layers run last to first; the IAF's sampling pass is the MAF's "
                        "data-to-noise pass, so apply maf.transforms first to last",
                    ),
                    (u, "x equals z: pass z through every layer"),
                ],
            )
            or "x is not the MAF's forward pass applied to z, layer by layer"
        )
        _fail(name, message, case)
    log_base = maf.base.log_prob(u)
    log_q_ref = log_base - log_det
    if "log_q" in parts and not _close(log_q, log_q_ref):
        h, lds = u, []
        for t in maf.transforms:
            h, ld = t(h)
            lds.append(ld)
        std_normal = -0.5 * (u.square().sum(1) + u.shape[1] * math.log(2 * math.pi))
        message = (
            _diagnose(
                log_q,
                log_q_ref,
                [
                    (
                        log_base + log_det,
                        "the log-det term has the wrong sign: "
                        "log q(x) = log p(z) - log|det dx/dz|",
                    ),
                    (
                        log_base,
                        "the log-det term is missing: log q(x) = log p(z) - log|det dx/dz|, "
                        "summed over the layers",
                    ),
                    (-log_det, "the base density is missing: add maf.base.log_prob(z)"),
                    (
                        log_base - lds[-1],
                        "only the last layer's log-det is there: sum the log-dets " "of all layers",
                    ),
                    (
                        log_base - lds[0],
                        "only the first layer's log-det is there: sum the log-dets "
                        "of all layers",
                    ),
                    (
                        maf.log_prob(x),
                        "you scored x with the MAF's density; the IAF's density of "
                        "its own sample is log p(z) - log|det dx/dz|",
                    ),
                    (
                        maf.base.log_prob(x) - log_det,
                        "evaluate the base density at the noise z, " "not at the sample x",
                    ),
                    (
                        std_normal - log_det,
                        "use maf.base.log_prob(z): this flow's base is not a " "standard normal",
                    ),
                ],
            )
            or "log_q is not log p(z) - log|det dx/dz|"
        )
        _fail(name, message, case)
