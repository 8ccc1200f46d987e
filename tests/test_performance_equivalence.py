"""The fast inverse of the MAF layer returns what the plain loop returns.

``MaskedAffineAutoregressive.inverse`` computes each hidden unit once (``MADE.sequential``)
instead of ``dim`` full MADE passes (``_inverse_loop``, kept as the reference); it must
agree with the loop in float64, with and without autograd.
"""

import pytest
import torch

import mafkit
from mafkit.transforms import MaskedAffineAutoregressive

ORDERS = {"natural": None, "reversed": "reversed", "shuffled": "shuffled"}


def make_layer(
    dim: int, context_dim: int, order: str, hidden=(16, 7)
) -> MaskedAffineAutoregressive:
    if order == "reversed":
        layer_order = torch.arange(dim).flip(0)
    elif order == "shuffled":
        layer_order = torch.randperm(dim)
    else:
        layer_order = None
    layer = MaskedAffineAutoregressive(dim, hidden, context_dim, layer_order).double()
    with torch.no_grad():  # move away from the identity initialisation
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def inputs(dim: int, context_dim: int, batch: int = 9):
    z = torch.randn(batch, dim, dtype=torch.float64)
    context = torch.randn(batch, context_dim, dtype=torch.float64) if context_dim else None
    return z, context


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("context_dim", [0, 3])
@pytest.mark.parametrize("order", list(ORDERS))
def test_fast_inverse_returns_what_the_plain_loop_returns(
    dim: int, context_dim: int, order: str
) -> None:
    layer = make_layer(dim, context_dim, order)
    z, context = inputs(dim, context_dim)
    with torch.no_grad():
        x_fast, log_det_fast = layer.inverse(z, context)
        x_loop, log_det_loop = layer._inverse_loop(z, context)
    torch.testing.assert_close(x_fast, x_loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det_fast, log_det_loop, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("context_dim", [0, 3])
def test_fast_inverse_with_autograd_matches_the_loop_and_its_gradients(
    dim: int, context_dim: int
) -> None:
    layer = make_layer(dim, context_dim, "shuffled")
    z, context = inputs(dim, context_dim)
    z.requires_grad_(True)
    grads = []
    for inverse in (layer.inverse, layer._inverse_loop):
        x, log_det = inverse(z, context)
        loss = x.sin().sum() + log_det.sum()
        # With dim = 1 the hidden layers cannot reach the output: the fast inverse leaves
        # them out of the graph, the loop multiplies them by zero.
        wrt = [z, *layer.parameters()]
        got = torch.autograd.grad(loss, wrt, allow_unused=True)
        grads.append([torch.zeros_like(w) if g is None else g for g, w in zip(got, wrt)])
    for fast, loop in zip(*grads):
        torch.testing.assert_close(fast, loop, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hidden", [(16, 7), (3,), (8, 8, 8)])
def test_fast_inverse_handles_narrow_and_deep_made(hidden: tuple[int, ...]) -> None:
    layer = make_layer(5, 2, "shuffled", hidden)
    z, context = inputs(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            layer.inverse(z, context), layer._inverse_loop(z, context), rtol=1e-12, atol=1e-12
        )


def test_fast_inverse_works_for_other_activations() -> None:
    layer = MaskedAffineAutoregressive(4, (12, 12), 2, activation=torch.nn.Tanh).double()
    z, context = inputs(4, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            layer.inverse(z, context), layer._inverse_loop(z, context), rtol=1e-12, atol=1e-12
        )


def test_flow_sampling_inverts_the_density_pass() -> None:
    flow = mafkit.MAF(5, n_layers=3, hidden=(16, 16), context_dim=2).double()
    context = torch.randn(700, 2, dtype=torch.float64)
    with torch.no_grad():
        x = flow.sample(700, context)
        z, _ = flow.forward(x, context)
        x_back, _ = flow.inverse(z, context)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_points_are_still_rejected(bad: float) -> None:
    flow = mafkit.MAF(3, n_layers=2, hidden=(8,))
    x = torch.randn(700, 3)
    x[345, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        flow.log_prob(x)
