"""Checkers of the open-ended MADE MoG exercise: the log-density of a mixture-of-Gaussians
MADE, from its network's outputs and as a whole model."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..made import MADE
from ._feedback import (
    _call,
    _check_gradients,
    _close,
    _diagnose,
    _fail,
    _keeps_random_state,
    _orders,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
)

__all__ = ["check_mog_log_prob", "check_made_mog"]

LOG_2PI = math.log(2 * math.pi)


def reference_mog_log_prob(params: Tensor, x: Tensor, n_components: int) -> Tensor:
    """log p(x) = sum_i log sum_c w_ic N(x_i; m_ic, exp(l_ic)^2), from first principles.

    ``params`` is (batch, D, 3C): C logits, then C means, then C log-standard-deviations.
    """
    logits, means, log_stds = params.split(n_components, dim=2)
    log_w = logits - torch.logsumexp(logits, dim=2, keepdim=True)
    z = (x[:, :, None] - means) * torch.exp(-log_stds)
    log_normal = -0.5 * z.square() - log_stds - 0.5 * LOG_2PI
    return torch.logsumexp(log_w + log_normal, dim=2).sum(1)


def _variants(params: Tensor, x: Tensor, c: int) -> list[tuple[Tensor | None, str]]:
    """Typical wrong answers, each with the message that names its mistake."""
    logits, means, log_stds = params.split(c, dim=2)
    log_w = torch.log_softmax(logits, dim=2)
    z = (x[:, :, None] - means) * torch.exp(-log_stds)
    half = -0.5 * z.square() - 0.5 * LOG_2PI
    with torch.no_grad():
        return [
            (
                torch.logsumexp(logits + half - log_stds, dim=2).sum(1),
                "the mixture weights are not normalised: turn the logits into log-weights "
                "with torch.log_softmax over the components",
            ),
            (
                torch.logsumexp(log_w + half, dim=2).sum(1),
                "each Gaussian misses its normaliser -log(sigma): "
                "log N(x; m, sigma^2) = -(x - m)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2",
            ),
            (
                torch.logsumexp(
                    log_w
                    - 0.5 * ((x[:, :, None] - means) / log_stds).square()
                    - log_stds.abs().log()
                    - 0.5 * LOG_2PI,
                    dim=2,
                ).sum(1),
                "the standard deviation is exp(log_std), not log_std itself",
            ),
            (
                torch.logsumexp(log_w + half - log_stds, dim=1).sum(1),
                "the log-sum-exp runs over the variables: mix over the C components "
                "(last axis), then add the D conditionals",
            ),
            (
                torch.logsumexp(log_w + half - log_stds, dim=2).mean(1),
                "you averaged the D conditionals; the log-density is their sum",
            ),
            (
                reference_mog_log_prob(
                    params.unflatten(2, (c, 3)).transpose(2, 3).flatten(2), x, c
                ),
                "the parameters are split the wrong way: the last axis holds C logits, "
                "then C means, then C log-standard-deviations (params.split(C, dim=2))",
            ),
        ]


@_keeps_random_state
def check_mog_log_prob(mog_log_prob: Callable) -> None:
    """Check ``mog_log_prob(params, x, n_components) -> (batch,)``, the log-density of a MADE
    MoG from its network's output ``params`` (batch, D, 3C): C logits, C means and C
    log-standard-deviations per variable. Cases include points far from every component
    (a log of a sum of exponentials underflows there) and one with gradients on.
    """
    name, fn = "MADE MoG log-density", "mog_log_prob"
    specs = [(2, 3), (1, 1), (1, 4), (3, 2), (5, 5), (4, 1), (3, 10)]
    with _seeded(808):
        cases = []
        for k, (dim, c) in enumerate(specs):
            params = torch.randn(6, dim, 3 * c, dtype=torch.float64)
            x = torch.randn(6, dim, dtype=torch.float64) * 2
            if k == 4:  # far from every component: exp underflows, log-sum-exp does not
                x[0] = 60.0
                params[0, :, 2 * c :] = -2.0
            text = f"D={dim}, C={c}" + (", a point far in the tails" if k == 4 else "")
            cases.append((params, x, c, text))
    for k, (params, x, c, case) in enumerate(cases):
        grads = k in (0, 3)
        given_params = params.clone().requires_grad_(grads)
        given_x = x.clone().requires_grad_(grads)
        value = _call(name, fn, case, mog_log_prob, given_params, given_x, c)
        _unchanged(name, fn, "params", params, given_params.detach(), case)
        _unchanged(name, fn, "x", x, given_x.detach(), case)
        value = _tensor(value, "the log-density", (x.shape[0],), name, case)
        expected = reference_mog_log_prob(params, x, c)
        got = value.detach()
        if not torch.isfinite(got).all() and torch.isfinite(expected).all():
            _fail(
                name,
                "the log-density is -inf or NaN at a point far from every component: "
                "log(sum(exp(...))) underflows there; use torch.logsumexp",
                case,
            )
        if not _close(got, expected):
            message = _diagnose(got, expected, _variants(params, x, c)) or (
                "the log-density is not sum_i log sum_c w_ic N(x_i; m_ic, sigma_ic^2)"
            )
            _fail(name, message, case)
        if grads:
            reference = reference_mog_log_prob(given_params, given_x, c)
            _check_gradients(
                name,
                fn,
                "the log-density",
                value,
                reference,
                [given_params, given_x],
                f"{case}, with gradients",
            )
    _passed(name, len(cases))


@_keeps_random_state
def check_made_mog(made_mog: Callable) -> None:
    """Check ``MADEMoGDensity(dim, n_components, hidden, order)``: a MADE MoG as a model.

    It must hold a ``mafkit.MADE`` named ``made`` with ``3 * n_components`` parameters per
    variable, and ``log_prob(x)`` (batch, D) -> (batch,) must be the mixture log-density of
    ``made(x)``'s output. For D = 2 the density must integrate to 1 on a grid, whatever the
    weights (the autoregressive property makes it a product of normalised conditionals).
    """
    name, cls = "MADE MoG model", "MADEMoGDensity"
    specs = [(2, 3), (1, 2), (3, 4), (2, 1), (4, 2)]
    with _seeded(809):
        orders = _orders([d for d, _ in specs])
        data = [torch.randn(5, d, dtype=torch.float64) for d, _ in specs]
    for (dim, c), order, x in zip(specs, orders, data):
        case = f"D={dim}, C={c}, order={order.tolist()}"
        with _seeded(810):
            model = _call(name, cls, case, made_mog, dim, c, (16,), order.clone())
        if not isinstance(model, nn.Module):
            _fail(name, f"{cls}(...) should build an nn.Module, got {type(model).__name__}", case)
        made = getattr(model, "made", None)
        if not isinstance(made, MADE):
            _fail(name, "keep the network as model.made, a mafkit.MADE", case)
        model = model.double()
        with torch.no_grad():
            n_params = model.made(x).shape[-1]
        if n_params != 3 * c:
            _fail(
                name,
                f"model.made gives {n_params} numbers per variable; a mixture of C = "
                f"{c} Gaussians needs 3C = {3 * c}: logits, means and log-stds",
                case,
            )
        with _seeded(811):
            _randomise(model, 0.3)
        given = x.clone()
        value = _call(name, f"{cls}.log_prob", case, model.log_prob, given)
        _unchanged(name, f"{cls}.log_prob", "x", x, given, case)
        value = _tensor(value, "log_prob", (x.shape[0],), name, case)
        with torch.no_grad():
            expected = reference_mog_log_prob(model.made(x), x, c)
        if not _close(value.detach(), expected):
            message = _diagnose(value.detach(), expected, _variants(model.made(x), x, c))
            _fail(name, message or "log_prob is not the mixture log-density of made(x)", case)
        if not value.requires_grad:
            _fail(name, "log_prob carries no gradient: it must stay differentiable", case)
        if dim == 2:
            with torch.no_grad():
                n = 201
                axis = torch.linspace(-12, 12, n, dtype=torch.float64)
                grid = torch.cartesian_prod(axis, axis)
                mass = float(torch.exp(model.log_prob(grid)).sum() * (axis[1] - axis[0]) ** 2)
            if abs(mass - 1) > 0.02:
                _fail(name, f"the density integrates to {mass:.3f} on a grid, not 1", case)
    _passed(name, len(specs))
