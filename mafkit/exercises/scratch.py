"""Checkers of the open-ended flow exercise: a MAF layer written from scratch, trained on two
moons and compared with mafkit's own MAF."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..masks import input_degrees
from ._feedback import (
    _call,
    _close,
    _fail,
    _keeps_random_state,
    _no_graph_message,
    _orders,
    _parts,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
)

__all__ = ["check_maf_layer", "check_two_moons_fit", "two_moons_reference"]

# The training budget the notebook and the reference share: full-batch Adam on two moons.
MOONS_TRAIN, MOONS_TEST, MOONS_STEPS, MOONS_LR = 512, 4096, 300, 5e-3
MOONS_MARGIN = 0.2  # nats per point the answer may fall short of mafkit's MAF


def _mafkit_modules(module: nn.Module) -> list[str]:
    """Names of the mafkit classes a module is built from (the exercise writes its own)."""
    return sorted(
        {
            type(m).__name__
            for m in module.modules()
            if type(m).__module__.startswith("mafkit") and m is not module
        }
        | ({type(module).__name__} if type(module).__module__.startswith("mafkit") else set())
    )


def jacobian_rows(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """(batch, D, D): the Jacobian of ``fn`` at every point, each point on its own."""
    return torch.stack(
        [torch.autograd.functional.jacobian(lambda row: fn(row[None])[0], row) for row in x]
    )


def check_affine_in_own_variable(name: str, layer: nn.Module, x: Tensor, case: str) -> None:
    """Fail unless every z_i is affine in x_i (its shift and log-scale ignore x_i)."""
    with torch.no_grad():
        for i in range(x.shape[1]):
            step = torch.zeros_like(x)
            step[:, i] = 0.5
            bend = layer(x + 2 * step)[0] - 2 * layer(x + step)[0] + layer(x)[0]
            if bend[:, i].abs().max() > 1e-6:
                _fail(
                    name,
                    f"z_{i} is not affine in x_{i}: its shift or log-scale depends on x_{i} "
                    "itself. A variable must not be part of its own condition: the output "
                    "mask needs the strict inequality d_out > d_in",
                    case,
                )


def _pair(result: object, what: str, name: str, case: str) -> tuple[Tensor, Tensor]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        _fail(name, f"{what} must return a pair (tensor, log_det)", case)
    return result[0], result[1]


@_keeps_random_state
def check_maf_layer(maf_layer: Callable, part: str | None = None) -> None:
    """Check a MAF layer written from scratch: ``MAFLayer(dim, hidden, order)`` with
    ``forward(x) -> (z, log|det dz/dx|)`` and ``inverse(z) -> (x, log|det dx/dz|)``.

    With random weights (float64), z must be autoregressive in the layer's order (checked
    with autograd: the Jacobian is triangular with a positive diagonal), the log-det must be
    that of the Jacobian, a point's result must not depend on its batch, gradients must reach
    the weights, and the inverse must give back x with the opposite log-det. ``part`` limits
    the check to ``"forward"`` or ``"inverse"``. A layer built from mafkit's modules is refused.
    """
    parts, name = _parts("MAF layer", part, ("forward", "inverse"))
    cls = "MAFLayer"
    dims = [3, 1, 2, 4, 5, 3]
    with _seeded(707):
        orders = _orders(dims)
        data = [torch.randn(5, d, dtype=torch.float64) for d in dims]
    for dim, order, x in zip(dims, orders, data):
        hidden = (4 * dim + 4,)
        case = f"D={dim}, hidden={hidden}, order={order.tolist()}"
        given = order.clone()
        with _seeded(708):
            layer = _call(name, cls, case, maf_layer, dim, hidden, given)
        _unchanged(name, cls, "order", order, given, case)
        if not isinstance(layer, nn.Module):
            _fail(name, f"{cls}(...) should build an nn.Module, got {type(layer).__name__}", case)
        used = _mafkit_modules(layer)
        if used:
            _fail(
                name,
                f"your layer is built from mafkit's {', '.join(used)}: the exercise is to "
                "write it from scratch with torch (masks from degrees, nn.Linear weights)",
                case,
            )
        layer = layer.double()
        with _seeded(709):
            _randomise(layer, 0.3)
        if not list(layer.parameters()):
            _fail(name, "your layer has no trainable parameters (nn.Parameter)", case)
        x_given = x.clone()
        z, log_det = _pair(
            _call(name, f"{cls}.forward", case, layer, x_given), "forward", name, case
        )
        _unchanged(name, f"{cls}.forward", "x", x, x_given, case)
        z = _tensor(z, "z", (5, dim), name, case)
        log_det = _tensor(log_det, "the forward log_det", (5,), name, case)
        if "forward" in parts:
            _check_forward(name, layer, x, z, log_det, order, case)
        if "inverse" in parts:
            _check_inverse(name, layer, x, z.detach(), log_det.detach(), case)
    _passed(name, len(dims))


def _check_forward(
    name: str, layer: nn.Module, x: Tensor, z: Tensor, log_det: Tensor, order: Tensor, case: str
) -> None:
    if not (z.requires_grad and log_det.requires_grad):
        _fail(name, _no_graph_message("MAFLayer.forward", "the output"), case)
    jac = jacobian_rows(lambda v: layer(v)[0], x)
    degree = input_degrees(order)
    dim = len(order)
    for i in range(dim):
        for j in range(dim):
            if degree[j] > degree[i] and jac[:, i, j].abs().max() > 0:
                _fail(
                    name,
                    f"z_{i} depends on x_{j}, which comes after it in the order: the shift "
                    "and log-scale of variable i may only see the variables before it "
                    "(strict output mask, degrees from the order)",
                    case,
                )
    check_affine_in_own_variable(name, layer, x, case)
    diag = torch.diagonal(jac, dim1=1, dim2=2)
    if (diag <= 0).any():
        _fail(
            name,
            "dz_i/dx_i is not positive: z_i = (x_i - mu_i) exp(-alpha_i), where mu_i and "
            "alpha_i must not depend on x_i itself",
            case,
        )
    expected = diag.log().sum(1)
    got = log_det.detach()
    if not _close(got, expected):
        if _close(got, -expected):
            message = (
                "the forward log_det has the wrong sign: data to noise it is "
                "log|det dz/dx| = -sum_i alpha_i"
            )
        else:
            message = "the forward log_det is not log|det dz/dx| of your map (autograd)"
        _fail(name, message, case)
    alone = layer(x[:1].clone())
    if not (_close(alone[0].detach(), z[:1].detach()) and _close(alone[1].detach(), got[:1])):
        _fail(name, "a point's z depends on the rest of its batch", case)
    grads = torch.autograd.grad(
        log_det.sum() + z.square().sum(), list(layer.parameters()), allow_unused=True
    )
    if all(g is None or not g.abs().sum() > 0 for g in grads):
        _fail(name, "no gradient reaches your layer's weights from z and log_det", case)


def _check_inverse(
    name: str, layer: nn.Module, x: Tensor, z: Tensor, log_det: Tensor, case: str
) -> None:
    given = z.clone()
    if not hasattr(layer, "inverse"):
        _fail(name, "your layer has no method inverse(z)", case)
    x_back, log_det_back = _pair(
        _call(name, "MAFLayer.inverse", case, layer.inverse, given), "inverse", name, case
    )
    _unchanged(name, "MAFLayer.inverse", "z", z, given, case)
    x_back = _tensor(x_back, "the inverse's x", tuple(x.shape), name, case)
    log_det_back = _tensor(log_det_back, "the inverse's log_det", (x.shape[0],), name, case)
    if not _close(x_back.detach(), x):
        _fail(
            name,
            "inverse(forward(x)) does not give back x: noise to data, x_i = mu_i + "
            "exp(alpha_i) z_i, and mu_i, alpha_i need the x_<i you are computing (D passes)",
            case,
        )
    if not _close(log_det_back.detach(), -log_det):
        message = "the inverse's log_det is not log|det dx/dz| = -(the forward log_det)"
        if _close(log_det_back.detach(), log_det):
            message = (
                "the inverse's log_det has the sign of the forward one: noise to data it "
                "is log|det dx/dz| = +sum_i alpha_i"
            )
        _fail(name, message, case)


def _moons(n: int, seed: int) -> Tensor:
    from ..data import two_moons

    return two_moons(n, generator=torch.Generator().manual_seed(seed))


@functools.lru_cache(maxsize=1)
def two_moons_reference() -> float:
    """Mean test log-density (nats) of mafkit's MAF (5 layers, hidden (32,)) trained on two
    moons with the budget the exercise uses: full-batch Adam, MOONS_STEPS steps."""
    from ..flows import MAF

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = MAF(2, n_layers=5, hidden=(32,))
        train = moons_training_data()
        optimiser = torch.optim.Adam(flow.parameters(), lr=MOONS_LR)
        for _ in range(MOONS_STEPS):
            optimiser.zero_grad()
            loss = -flow.log_prob(train).mean()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            return float(flow.log_prob(_moons(MOONS_TEST, 2)).mean())


def _grid_mass(log_prob: Callable[[Tensor], Tensor], dtype: torch.dtype) -> float:
    """Integral of exp(log_prob) over [-3, 4] x [-3, 3.5], a box that holds the moons."""
    n = 141
    xs = torch.linspace(-3.0, 4.0, n, dtype=dtype)
    ys = torch.linspace(-3.0, 3.5, n, dtype=dtype)
    grid = torch.cartesian_prod(xs, ys)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    return float(torch.exp(log_prob(grid)).sum()) * cell


def moons_training_data() -> Tensor:
    """The (MOONS_TRAIN, 2) training points that the check hands to the answer."""
    return _moons(MOONS_TRAIN, 1)


@_keeps_random_state
def check_two_moons_fit(train_on_moons: Callable) -> None:
    """Check ``train_on_moons(data) -> flow``: a flow built from your own MAF layers, trained
    on the two-moons points ``data`` (MOONS_TRAIN, 2) with at most MOONS_STEPS steps.

    ``flow.log_prob(x)`` (n, 2) -> (n,) must be a normalised density (its integral over a box
    that holds the data is within 0.05 of 1) and its mean log-density on fresh test points
    must come within MOONS_MARGIN nats of mafkit's MAF trained with the same budget. A flow
    made of mafkit's modules is refused. The training runs from a fixed seed, so the verdict
    is the same on every run.
    """
    name, case = "two moons", f"{MOONS_TRAIN} training points, {MOONS_TEST} test points"
    train = moons_training_data()
    given = train.clone()
    with _seeded(710):
        flow = _call(name, "train_on_moons", case, train_on_moons, given)
    _unchanged(name, "train_on_moons", "data", train, given, case)
    if not hasattr(flow, "log_prob"):
        _fail(name, "train_on_moons must return the trained flow (with a log_prob method)", case)
    used = _mafkit_modules(flow) if isinstance(flow, nn.Module) else []
    if used:
        _fail(
            name,
            f"your flow contains mafkit's {', '.join(used)}: train a flow made of your own "
            "MAFLayer, not mafkit's MAF",
            case,
        )
    test = _moons(MOONS_TEST, 2)
    with torch.no_grad():
        log_p = _call(name, "flow.log_prob", case, flow.log_prob, test.clone())
        log_p = _tensor(log_p, "log_prob", (MOONS_TEST,), name, case)
        if not torch.isfinite(log_p).all():
            _fail(name, "log_prob is not finite on some test points", case)
        mass = _grid_mass(flow.log_prob, test.dtype)
    if not abs(mass - 1) < 0.05:
        _fail(
            name,
            f"exp(log_prob) integrates to {mass:.3f} over the box, not 1: the log-density "
            "misses a term (the base density of z, or the log-det of every layer)",
            case,
        )
    mean, reference = float(log_p.mean()), two_moons_reference()
    if mean < reference - MOONS_MARGIN:
        _fail(
            name,
            f"the mean test log-density is {mean:.2f} nats, more than {MOONS_MARGIN} below "
            f"mafkit's MAF with the same budget ({reference:.2f}): train longer (up to "
            f"{MOONS_STEPS} steps), alternate the orders between layers, or look for a "
            "layer that cannot change",
            case,
        )
    # The verdict names no number of the run: graders compare it as text.
    print(f"✓ {name}: normalised, and within {MOONS_MARGIN} nats of mafkit's MAF")
