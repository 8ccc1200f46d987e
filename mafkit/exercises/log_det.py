"""Checkers of the log-det exercises: triangular Jacobians and the batch-norm layer."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from ..masks import input_degrees
from ..transforms import BatchNorm
from ._feedback import (
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
)

__all__ = ["check_triangular_log_det", "check_batch_norm"]


# ---------------------------------------------------------------- 6. log-dets and batch norm


_NO_DETERMINANT = (
    "do not call a determinant routine (torch.det, torch.logdet, torch.slogdet, "
    "torch.linalg): the point is that a triangular Jacobian needs only its diagonal"
)


def _determinant_targets() -> list[tuple[object, str]]:
    return [
        (torch, "det"),
        (torch, "logdet"),
        (torch, "slogdet"),
        (torch.linalg, "det"),
        (torch.linalg, "slogdet"),
        (torch.Tensor, "det"),
        (torch.Tensor, "logdet"),
        (torch.Tensor, "slogdet"),
    ]


@_keeps_random_state
def check_triangular_log_det(triangular_log_det: Callable) -> None:
    """Check ``triangular_log_det(jac) -> (batch,)`` for Jacobians triangular in some order.

    ``jac`` is (batch, D, D), triangular once rows and columns follow an order (so its
    determinant is the product of its diagonal); the answer is ``sum_i log|jac[:, i, i]|``.
    Determinant routines are refused, ``jac`` must come back unchanged, and the gradient with
    respect to ``jac`` must be the reference's.
    """
    name, fn = "triangular log-det", "triangular_log_det"
    dims = [3, 1, 2, 4, 5, 3, 8, 6]
    with _seeded(606):
        cases = []
        for dim, order in zip(dims, _orders(dims)):
            lower = torch.randn(4, dim, dim, dtype=torch.float64).tril(-1)
            diag = torch.exp(torch.randn(4, dim, dtype=torch.float64))
            diag = diag * torch.where(torch.rand(4, dim) < 0.4, -1.0, 1.0).double()
            lower = lower + torch.diag_embed(diag)
            rank = input_degrees(order) - 1  # position of each variable in the order
            jac = lower[:, rank][:, :, rank]  # triangular after sorting by the order
            cases.append((jac, f"D={dim}, triangular in the order {order.tolist()}"))
    for k, (jac, case) in enumerate(cases):
        given = jac.clone().requires_grad_(k == 3)
        with _forbidden(name, _determinant_targets(), _NO_DETERMINANT):
            result = _call(name, fn, case, triangular_log_det, given)
        _unchanged(name, fn, "jac", jac, given.detach(), case)
        value = _tensor(result, "the log-det", (jac.shape[0],), name, case)
        if k == 3:
            with torch.no_grad():
                ok = _close(value.detach(), torch.diagonal(jac, dim1=1, dim2=2).abs().log().sum(1))
            if ok:
                reference = torch.diagonal(given, dim1=1, dim2=2).abs().log().sum(1)
                _check_gradients(
                    name, fn, "the log-det", value, reference, [given], f"{case}, with gradients"
                )
        value = value.detach()
        diag = torch.diagonal(jac, dim1=1, dim2=2)
        expected = diag.abs().log().sum(1)
        if torch.isnan(value).any():
            _fail(
                name,
                "the log-det is NaN: some diagonal entries are negative; the log-det "
                "is sum_i log|J_ii|, take the absolute value",
                case,
            )
        if not _close(value, expected):
            message = (
                _diagnose(
                    value,
                    expected,
                    [
                        (
                            diag.sum(1),
                            "you summed the diagonal entries; the log-det sums their logs, "
                            "sum_i log|J_ii|",
                        ),
                        (
                            diag.abs().prod(1),
                            "you returned |det J| = prod_i |J_ii|; take its log "
                            "(better: sum the logs, a product can overflow)",
                        ),
                        (diag.abs().log().mean(1), "you averaged the log-diagonal; sum it"),
                        (-expected, "the log-det has the wrong sign: it is +sum_i log|J_ii|"),
                        (
                            diag.abs().log()[:, 0],
                            "you took only the first diagonal entry; sum all D",
                        ),
                    ],
                )
                or "the log-det is not sum_i log|J_ii|"
            )
            _fail(name, message, case)
    _passed(name, len(cases))


@_keeps_random_state
def check_batch_norm(batch_norm: Callable, part: str | None = None) -> None:
    """Check ``batch_norm(bn, x) -> (z, log_det)``, the data-to-noise pass of ``mafkit.BatchNorm``.

    ``z = exp(log_gamma) (x - m) / sqrt(v + eps) + beta`` with the batch's mean and biased
    variance in training mode and ``bn.running_mean``, ``bn.running_var`` in evaluation mode;
    ``log_det = sum(log_gamma) - 0.5 sum(log(v + eps))`` for the same v, shape (batch,). In
    evaluation mode a point's result must not depend on the rest of its batch. Calling the
    layer (``bn(x)``) or its ``statistics`` is refused; ``x`` must come back unchanged; in
    training mode the gradients must flow through the batch statistics. ``part`` limits the
    check to ``"z"`` or ``"log_det"``.
    """
    parts, name = _parts("batch norm", part, ("z", "log_det"))
    fn = "batch_norm"
    dims = [3, 1, 2, 5, 3, 1, 4, 6]
    with _seeded(607):
        cases = []
        for i, dim in enumerate(dims):
            bn = BatchNorm(dim, eps=0.05).double()
            _randomise(bn, 0.5)
            bn.running_mean.normal_()
            bn.running_var.copy_(torch.exp(torch.randn(dim, dtype=torch.float64)))
            bn.train(i % 2 == 0)
            x = torch.randn(16, dim, dtype=torch.float64) * 2 + 1
            mode = "training mode" if bn.training else "evaluation mode"
            cases.append((bn, x, f"D={dim}, {mode}"))
    no_call = (
        "do not call bn(x) or bn.statistics, they are the answer: compute the statistics, z "
        "and log_det from x and the layer's parameters"
    )

    def handed(bn: BatchNorm) -> BatchNorm:
        return _forbid(_forbid(bn, "forward", name, no_call), "statistics", name, no_call)

    for k, (bn, x, case) in enumerate(cases):
        given = x.clone()
        student_bn = handed(bn)
        with torch.no_grad():
            result = _call(name, fn, case, batch_norm, student_bn, given)
        _unchanged(name, fn, "x", x, given, case)
        for key in ("log_gamma", "beta"):
            _unchanged(name, fn, f"bn.{key}", getattr(bn, key), getattr(student_bn, key), case)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "batch_norm must return a pair (z, log_det)", case)
        z = _tensor(result[0], "z", tuple(x.shape), name, case)
        log_det = torch.as_tensor(result[1])
        if log_det.dim() == 0:
            _fail(
                name,
                "log_det is a single number; return one value per point, shape "
                "(batch,) (e.g. value.expand(x.shape[0]))",
                case,
            )
        log_det = _tensor(log_det, "log_det", (x.shape[0],), name, case)
        with torch.no_grad():
            z_ref, log_det_ref = copy.deepcopy(bn)(x)
            _batch_norm_compare(name, bn, x, z, log_det, z_ref, log_det_ref, parts, case)
        if k in (0, 1):  # training and evaluation mode with gradients
            _batch_norm_gradients(name, fn, batch_norm, handed(bn), x, parts, case)
        if not bn.training:
            with torch.no_grad():
                alone = _call(name, fn, case, batch_norm, handed(bn), x[:1])
            if not _close(torch.as_tensor(alone[0]), z[:1]):
                _fail(
                    name,
                    "in evaluation mode a point's z depends on the other points of "
                    "its batch: use the fixed statistics bn.running_mean and "
                    "bn.running_var",
                    case,
                )
    _passed(name, len(cases))


def _batch_norm_variants(
    bn: BatchNorm, x: Tensor, m: Tensor, v: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    z = (x - m) / torch.sqrt(v + eps) * torch.exp(bn.log_gamma) + bn.beta
    return z, (bn.log_gamma.sum() - 0.5 * torch.log(v + eps).sum()).expand(x.shape[0])


def _batch_norm_compare(
    name: str,
    bn: BatchNorm,
    x: Tensor,
    z: Tensor,
    log_det: Tensor,
    z_ref: Tensor,
    log_det_ref: Tensor,
    parts: set[str],
    case: str,
) -> None:
    batch_stats = (x.mean(0), x.var(0, unbiased=False))
    running = (bn.running_mean, bn.running_var)
    stats = batch_stats if bn.training else running
    other = running if bn.training else batch_stats
    wrong_stats = _batch_norm_variants(bn, x, *other, bn.eps)
    if bn.training:
        stats_msg = (
            "in training mode normalise with the batch's own mean and variance, not "
            "the running ones"
        )
    else:
        stats_msg = (
            "in evaluation mode use the fixed statistics bn.running_mean and "
            "bn.running_var, not the batch's: otherwise a point's density depends on "
            "the rest of its batch"
        )
    unbiased = _batch_norm_variants(bn, x, x.mean(0), x.var(0), bn.eps)
    no_eps = _batch_norm_variants(bn, x, *stats, 0.0)
    if "z" in parts and not _close(z, z_ref):
        message = (
            _diagnose(
                z,
                z_ref,
                [
                    (wrong_stats[0], stats_msg),
                    (
                        unbiased[0] if bn.training else None,
                        "use the biased batch variance, x.var(0, unbiased=False), as "
                        "mafkit.BatchNorm does",
                    ),
                    (no_eps[0], "add bn.eps to the variance before the square root"),
                    (
                        (x - stats[0]) / torch.sqrt(stats[1] + bn.eps) * bn.log_gamma + bn.beta,
                        "the scale is exp(bn.log_gamma), not bn.log_gamma",
                    ),
                    (
                        (x - stats[0]) / torch.sqrt(stats[1] + bn.eps),
                        "z misses the learnt scale and shift: multiply by "
                        "exp(bn.log_gamma), add bn.beta",
                    ),
                ],
            )
            or "z is not exp(log_gamma) (x - m) / sqrt(v + eps) + beta"
        )
        _fail(name, message, case)
    if "log_det" in parts and not _close(log_det, log_det_ref):
        m, v = stats
        lg, var_term = bn.log_gamma.sum().expand(len(x)), 0.5 * torch.log(v + bn.eps).sum()
        message = (
            _diagnose(
                log_det,
                log_det_ref,
                [
                    (wrong_stats[1], stats_msg),
                    (lg, "log_det misses the variance term -1/2 sum_i log(v_i + eps)"),
                    (-var_term.expand(len(x)), "log_det misses the term sum_i log_gamma_i"),
                    (
                        lg + var_term,
                        "the variance term has the wrong sign: dividing by sqrt(v + eps) "
                        "gives -1/2 sum_i log(v_i + eps)",
                    ),
                    (
                        lg - 2 * var_term,
                        "the variance term needs the factor 1/2: "
                        "log(1 / sqrt(v + eps)) = -1/2 log(v + eps)",
                    ),
                    (
                        -log_det_ref,
                        "log_det has the wrong sign: data to noise it is "
                        "sum log_gamma - 1/2 sum log(v + eps)",
                    ),
                    (
                        unbiased[1] if bn.training else None,
                        "use the biased batch variance, the same v " "that normalised z",
                    ),
                    (
                        no_eps[1],
                        "the variance in log_det needs + bn.eps too, the same v + eps as in z",
                    ),
                ],
            )
            or "log_det is not sum(log_gamma) - 1/2 sum(log(v + eps))"
        )
        _fail(name, message, case)


def _batch_norm_gradients(
    name: str,
    fn: str,
    batch_norm: Callable,
    bn: BatchNorm,
    x: Tensor,
    parts: set[str],
    case: str,
) -> None:
    x = x.clone().requires_grad_()
    inputs = [x, bn.log_gamma, bn.beta]
    z, log_det = _call(name, fn, case, batch_norm, bn, x)
    log_det = torch.as_tensor(log_det).expand(x.shape[0])
    reference = copy.copy(bn)  # shares the parameters, without the refusals
    for method in ("forward", "statistics"):
        vars(reference).pop(method, None)
    z_ref, log_det_ref = reference(x)
    detached = (
        "the values are right but the gradients are not: in training mode the batch mean "
        "and variance are functions of x and must stay in the graph (no .detach(), no "
        "torch.no_grad() around them), or training would ignore how x moves them"
    )
    where = f"{case}, with gradients"
    if "z" in parts:
        _check_gradients(
            name, fn, "z", z, z_ref, inputs, where, wrong=detached if bn.training else ""
        )
    if "log_det" in parts:
        _check_gradients(
            name,
            fn,
            "log_det",
            log_det,
            log_det_ref,
            inputs,
            where,
            wrong=detached if bn.training else "",
        )
