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
    _close,
    _diagnose,
    _fail,
    _forbid,
    _orders,
    _passed,
    _randomise,
    _seeded,
    _tensor,
)

__all__ = ["check_triangular_log_det", "check_batch_norm"]


# ---------------------------------------------------------------- 6. log-dets and batch norm


@torch.no_grad()
def check_triangular_log_det(triangular_log_det: Callable) -> None:
    """Check ``triangular_log_det(jac) -> (batch,)`` for Jacobians triangular in some order.

    ``jac`` is (batch, D, D), triangular once rows and columns follow an order (so its
    determinant is the product of its diagonal); the answer is ``sum_i log|jac[:, i, i]|``.
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
    for jac, case in cases:
        result = _call(name, fn, case, triangular_log_det, jac.clone())
        value = _tensor(result, "the log-det", (jac.shape[0],), name, case)
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


@torch.no_grad()
def check_batch_norm(batch_norm: Callable) -> None:
    """Check ``batch_norm(bn, x) -> (z, log_det)``, the data-to-noise pass of ``mafkit.BatchNorm``.

    ``z = exp(log_gamma) (x - m) / sqrt(v + eps) + beta`` with the batch's mean and biased
    variance in training mode and ``bn.running_mean``, ``bn.running_var`` in evaluation mode;
    ``log_det = sum(log_gamma) - 0.5 sum(log(v + eps))`` for the same v, shape (batch,). In
    evaluation mode a point's result must not depend on the rest of its batch.
    """
    name, fn = "batch norm", "batch_norm"
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
    for bn, x, case in cases:
        no_call = "do not call bn(x), it is the answer: compute z and log_det from its parameters"
        result = _call(name, fn, case, batch_norm, _forbid(bn, "forward", name, no_call), x.clone())
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
        z_ref, log_det_ref = copy.deepcopy(bn)(x)
        _batch_norm_compare(name, bn, x, z, log_det, z_ref, log_det_ref, case)
        if not bn.training:
            alone = _call(name, fn, case, batch_norm, _forbid(bn, "forward", name, no_call), x[:1])
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
    if not _close(z, z_ref):
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
    if not _close(log_det, log_det_ref):
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
