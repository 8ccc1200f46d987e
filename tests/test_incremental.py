"""incremental_inverse computes each hidden unit once and returns what D full passes return.

``MaskedAffineAutoregressive.inverse`` uses it; ``inverse_by_passes`` is the plain version
the chapters teach. The two are pinned to each other in float64: values and gradients, for
every D from 1 to 8, with a context, with Tanh, and for narrow and deep networks.
"""

import pytest
import torch
from conftest import float64_inputs, perturbed

import mafkit
from mafkit import MaskedAffineAutoregressive
from mafkit.incremental import autoregressive_steps, incremental_inverse

TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def make_layer(
    dim: int, context_dim: int = 0, hidden=(16, 7), activation=torch.nn.ReLU
) -> MaskedAffineAutoregressive:
    layer = MaskedAffineAutoregressive(
        dim, hidden, context_dim, torch.randperm(dim), activation=activation
    )
    return perturbed(layer).double()


@pytest.mark.parametrize("dim", range(1, 9))
@pytest.mark.parametrize("context_dim", [0, 3])
def test_values_equal_those_of_d_full_passes(dim: int, context_dim: int) -> None:
    layer = make_layer(dim, context_dim)
    z, context = float64_inputs(dim, context_dim, n=9)
    with torch.no_grad():
        torch.testing.assert_close(
            incremental_inverse(layer, z, context), layer.inverse_by_passes(z, context), **TIGHT
        )


def _gradients(inverse, layer, z, context) -> list[torch.Tensor]:
    x, log_det = inverse(z, context)
    loss = x.sin().sum() + log_det.square().sum()
    wrt = [z, *layer.parameters()] + ([context] if context is not None else [])
    # With D = 1 the hidden layers cannot reach the output: the incremental pass leaves
    # them out of the graph, the full passes multiply them by zero.
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]


@pytest.mark.parametrize("dim", range(1, 9))
@pytest.mark.parametrize("context_dim", [0, 2])
def test_gradients_equal_those_of_d_full_passes(dim: int, context_dim: int) -> None:
    layer = make_layer(dim, context_dim)
    z, context = float64_inputs(dim, context_dim, n=5)
    z.requires_grad_(True)
    if context is not None:
        context.requires_grad_(True)
    fast = _gradients(lambda *args: incremental_inverse(layer, *args), layer, z, context)
    plain = _gradients(layer.inverse_by_passes, layer, z, context)
    for got, expected in zip(fast, plain):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "hidden", [(3,), (2, 2), (8, 8, 8, 8), (40,)], ids=["narrow", "narrower", "deep", "wide"]
)
def test_narrow_and_deep_networks(hidden: tuple[int, ...]) -> None:
    layer = make_layer(6, 2, hidden)
    z, context = float64_inputs(6, 2, n=7)
    with torch.no_grad():
        torch.testing.assert_close(
            incremental_inverse(layer, z, context), layer.inverse_by_passes(z, context), **TIGHT
        )


@pytest.mark.parametrize("activation", [torch.nn.Tanh, torch.nn.ELU])
def test_other_activations(activation: type[torch.nn.Module]) -> None:
    layer = make_layer(5, 2, (12, 12), activation)
    z, context = float64_inputs(5, 2, n=7)
    with torch.no_grad():
        torch.testing.assert_close(
            incremental_inverse(layer, z, context), layer.inverse_by_passes(z, context), **TIGHT
        )


def test_the_layers_inverse_is_the_incremental_one() -> None:
    layer = make_layer(4, 1)
    z, context = float64_inputs(4, 1)
    assert all(
        torch.equal(a, b)
        for a, b in zip(layer.inverse(z, context), incremental_inverse(layer, z, context))
    )


def test_flow_sampling_inverts_the_density_pass() -> None:
    flow = perturbed(mafkit.MAF(5, n_layers=3, hidden=(16, 16), context_dim=2)).double()
    context = torch.randn(700, 2, dtype=torch.float64)
    with torch.no_grad():
        x = flow.sample(700, context)
        z, _ = flow.forward(x, context)
        x_back, _ = flow.inverse(z, context)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)


def test_float32_agrees_with_float64() -> None:
    layer = make_layer(6)
    z, _ = float64_inputs(6, n=11)
    with torch.no_grad():
        x64, _ = incremental_inverse(layer, z)
        x32, _ = incremental_inverse(layer.float(), z.float())
    torch.testing.assert_close(x32.double(), x64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_params", [1, 3])
def test_made_sequential_returns_what_d_passes_of_the_made_return(n_params: int) -> None:
    made = perturbed(mafkit.MADE(5, (12, 9), n_params, 2, torch.randperm(5))).double()
    context = torch.randn(4, 2, dtype=torch.float64)
    # Each variable is a fixed function of its parameters: x_i = tanh(sum of params_i).
    with torch.no_grad():
        rows = autoregressive_steps(made, lambda k, params: params.sum(0).tanh(), 4, context)
        x = torch.zeros(4, 5, dtype=torch.float64)
        for _ in range(5):
            x = made(x, context).sum(2).tanh()
    torch.testing.assert_close(rows.t()[:, made.degrees_in - 1], x, **TIGHT)


def test_torch_func_grad_through_the_incremental_inverse_matches_autograd() -> None:
    layer = make_layer(4, 2)
    z, context = float64_inputs(4, 2, n=5)
    params = {name: p.detach() for name, p in layer.named_parameters()}

    class Inverse(torch.nn.Module):
        def __init__(self, inner: MaskedAffineAutoregressive) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, z: torch.Tensor, context: torch.Tensor):
            return self.inner.inverse(z, context)

    def loss(p: dict) -> torch.Tensor:
        named = {f"inner.{k}": v for k, v in p.items()}
        x, log_det = torch.func.functional_call(Inverse(layer), named, (z, context))
        return x.sin().sum() + log_det.sum()

    got = torch.func.grad(loss)(params)
    x, log_det = layer.inverse(z, context)
    (x.sin().sum() + log_det.sum()).backward()
    for name, p in layer.named_parameters():
        expected = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(got[name], expected, rtol=1e-10, atol=1e-12)
