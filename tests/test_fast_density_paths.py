"""The fast density pass returns what the plain autograd expressions return.

Three speed-ups sit in the data-to-noise direction of a MAF layer: the MADE evaluates its
output layer in blocked order (all shifts, then all log-scales), its linear layers run as
one autograd node with a hand-written gradient (``_LinearStack``; oneDNN's fused kernels for
float32 on the CPU), and the affine half of the layer has a hand-written gradient too
(``_AffineToNoise``). Training on batches below ``HAND_GRADIENT_MIN_BATCH`` keeps to
autograd's own graph, where that is cheaper. Each path is compared here with the plain
expression it replaces.
"""

import copy
import shutil

import pytest
import torch

from mafkit import MADE, MAF, MaskedAffineAutoregressive, MaskedLinear, soft_clamp
from mafkit.made import (
    HAND_GRADIENT_MIN_BATCH,
    _fused_available,
    _fused_linear_relu_available,
    _LinearStack,
)
from mafkit.transforms import _AffineToNoise

needs_onednn = pytest.mark.skipif(
    not _fused_linear_relu_available(), reason="this PyTorch build has no oneDNN fused linear"
)


def reference_params(made: MADE, x: torch.Tensor, context=None) -> torch.Tensor:
    """The MADE's blocked output from plain autograd expressions on its masked weights."""
    linears = [m for m in made.modules() if isinstance(m, MaskedLinear)]
    activations = [m for m in made.rest if not isinstance(m, MaskedLinear)]
    h = x @ (linears[0].weight * linears[0].mask).t() + linears[0].bias
    if context is not None:
        h = h + context @ made.context_layer.weight.t()
    for layer, activation in zip(linears[1:], activations):
        h = activation(h) @ (layer.weight * layer.mask).t() + layer.bias
    return h[:, made.blocked_rows]


def shifted(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Move the weights away from the identity initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


@pytest.mark.parametrize("dim", [1, 3, 8])
@pytest.mark.parametrize("n_params", [1, 2, 3])
def test_raw_forward_is_the_blocked_output_rearranged(dim: int, n_params: int) -> None:
    made = shifted(MADE(dim, hidden=(16,), n_params=n_params))
    x = torch.randn(7, dim)
    blocked = made.blocked_forward(x)
    params = made.raw_forward(x)
    assert blocked.shape == (7, n_params * dim) and params.shape == (7, dim, n_params)
    for i in range(dim):
        for p in range(n_params):
            assert torch.equal(params[:, i, p], blocked[:, p * dim + i])


def test_blocked_output_keeps_the_stored_interleaved_parameters() -> None:
    # The state dict keeps the interleaved layout: unit k is variable k // n_params.
    made = shifted(MADE(4, hidden=(8,), n_params=2))
    x = torch.randn(5, 4)
    last = made.rest[-1]
    h = made.rest[:-1](made.first(x))
    by_hand = h @ (last.weight * last.mask).t() + last.bias
    torch.testing.assert_close(made(x).reshape(5, 8), by_hand, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [50, HAND_GRADIENT_MIN_BATCH])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("context_dim", [0, 3])
@pytest.mark.parametrize("hidden", [(32, 32), (16,), (8, 8, 8)])
@pytest.mark.parametrize("activation", [torch.nn.ReLU, torch.nn.Tanh])
def test_made_matches_plain_autograd_values_and_gradients(
    batch: int, dtype: torch.dtype, context_dim: int, hidden: tuple[int, ...], activation: type
) -> None:
    made = shifted(MADE(2, hidden=hidden, context_dim=context_dim, activation=activation))
    made = made.to(dtype)
    x = torch.randn(batch, 2, dtype=dtype, requires_grad=True)
    context = torch.randn(batch, context_dim, dtype=dtype) if context_dim else None
    if context is not None:
        context.requires_grad_(True)
    weights = torch.randn(batch, 4, dtype=dtype)  # a loss that weighs every output differently
    wrt = [x, *made.parameters()] + ([context] if context_dim else [])
    results = []
    for evaluate in (made.blocked_forward, lambda *a: reference_params(made, *a)):
        out = evaluate(x, context)
        results.append((out, torch.autograd.grad((out * weights).sum(), wrt)))
    (fast, fast_grads), (plain, plain_grads) = results
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(fast, plain, **tol)
    for g_fast, g_plain in zip(fast_grads, plain_grads):
        torch.testing.assert_close(g_fast, g_plain, **tol)


@pytest.mark.parametrize("shape", [(128, 2), (4, 128), (16, 16)])
def test_weight_gradient_is_right_in_either_orientation(shape: tuple[int, int]) -> None:
    n_out, n_in = shape
    h = torch.randn(40, n_in, dtype=torch.float64, requires_grad=True)
    w = torch.randn(n_out, n_in, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n_out, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: _LinearStack.apply(*t), (h, w, b))


def test_linear_stack_passes_gradcheck_through_relus() -> None:
    torch.manual_seed(1)
    h = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    layers = [torch.randn(5, 3), torch.randn(5), torch.randn(4, 5), torch.randn(4)]
    layers = [t.double().requires_grad_(True) for t in layers]
    assert torch.autograd.gradcheck(lambda *t: _LinearStack.apply(*t), (h, *layers))


@needs_onednn
def test_float32_on_the_cpu_takes_the_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fused = torch.ops.mkldnn._linear_pointwise

    def counting(*args):
        calls.append(args[3])
        return fused(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", counting)
    made = MADE(4, hidden=(128, 128))
    out = made.blocked_forward(torch.randn(HAND_GRADIENT_MIN_BATCH, 4))
    assert type(out.grad_fn).__name__ == "_LinearStackBackward"
    # Only the 128 x 128 product is large enough for oneDNN; the others go to addmm.
    assert calls == ["relu"]
    calls.clear()
    with torch.no_grad():
        made.blocked_forward(torch.randn(8, 4))
    assert calls == []


def test_small_training_batches_keep_to_autograd() -> None:
    made = MADE(4, hidden=(16, 16))
    x = torch.randn(HAND_GRADIENT_MIN_BATCH - 1, 4)
    assert type(made.blocked_forward(x).grad_fn).__name__ == "AddmmBackward0"
    layer = MaskedAffineAutoregressive(4, (16, 16))
    z, _ = layer(x)
    assert "AffineToNoise" not in type(z.grad_fn).__name__
    z, _ = layer(torch.randn(HAND_GRADIENT_MIN_BATCH, 4))
    assert type(z.grad_fn).__name__ == "_AffineToNoiseBackward"


@pytest.mark.parametrize("context_dim", [0, 2])
def test_small_and_large_batches_give_the_same_layer(context_dim: int) -> None:
    layer = shifted(MaskedAffineAutoregressive(5, (32, 32), context_dim=context_dim))
    x = torch.randn(HAND_GRADIENT_MIN_BATCH, 5, requires_grad=True)
    context = torch.randn(HAND_GRADIENT_MIN_BATCH, context_dim) if context_dim else None
    z_large, log_det_large = layer(x, context)
    grad_large = torch.autograd.grad((z_large.sum(dim=1) + log_det_large)[:100].sum(), x)[0]
    z_small, log_det_small = layer(x[:100], None if context is None else context[:100])
    grad_small = torch.autograd.grad((z_small.sum(dim=1) + log_det_small).sum(), x)[0]
    torch.testing.assert_close(z_small, z_large[:100], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(log_det_small, log_det_large[:100], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_small, grad_large, rtol=1e-5, atol=1e-6)


def test_gradients_nobody_asked_for_are_skipped() -> None:
    made = shifted(MADE(5, hidden=(16, 16)))
    made.first.weight.requires_grad_(False)
    made.rest[-1].bias.requires_grad_(False)
    x = torch.randn(HAND_GRADIENT_MIN_BATCH, 5)  # no gradient for the input either
    made.blocked_forward(x).square().sum().backward()
    assert made.first.weight.grad is None and made.rest[-1].bias.grad is None
    reference = copy.deepcopy(made)
    for p in reference.parameters():
        p.grad = None
    reference_params(reference, x).square().sum().backward()
    for p_fast, p_plain in zip(made.parameters(), reference.parameters()):
        if p_fast.requires_grad:
            torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("context_dim", [0, 3])
def test_no_grad_and_autograd_evaluations_agree(context_dim: int) -> None:
    made = shifted(MADE(6, hidden=(32, 32), n_params=2, context_dim=context_dim))
    x = torch.randn(40, 12)[:, ::2]  # a non-contiguous view
    context = torch.randn(40, context_dim) if context_dim else None
    with_grad = made(x, context)
    with torch.no_grad():
        without_grad = made(x, context)
    assert torch.equal(with_grad, without_grad)


def affine_by_autograd(x: torch.Tensor, params: torch.Tensor, bound: float):
    """The affine half of a MAF layer as plain autograd expressions."""
    shift, raw = params.split(x.shape[1], dim=1)
    log_scale = soft_clamp(raw, bound)
    return (x - shift) * torch.exp(-log_scale), -log_scale.sum(dim=1)


def test_affine_gradient_passes_gradcheck_in_float64() -> None:
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    params = (3 * torch.randn(6, 8, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _AffineToNoise.apply(a, b, 2.0), (x, params))


@pytest.mark.parametrize("bound", [0.5, 5.0])
def test_affine_matches_the_plain_expression_and_its_gradient(bound: float) -> None:
    x = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    params = (4 * torch.randn(30, 10, dtype=torch.float64)).requires_grad_(True)
    params.data[0, 5:] = 0.0  # |raw| has a kink at 0
    grad_z, grad_log_det = torch.randn(30, 5, dtype=torch.float64), torch.randn(30)
    results = []
    for affine in (
        lambda: _AffineToNoise.apply(x, params, bound),
        lambda: affine_by_autograd(x, params, bound),
    ):
        z, log_det = affine()
        grads = torch.autograd.grad((z, log_det), (x, params), (grad_z, grad_log_det.double()))
        results.append((z, log_det, *grads))
    for fast, plain in zip(*results):
        torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)


def test_affine_does_not_modify_its_inputs() -> None:
    x, params = torch.randn(8, 3), torch.randn(8, 6)
    x_before, params_before = x.clone(), params.clone()
    _AffineToNoise.apply(x, params, 5.0)
    assert torch.equal(x, x_before) and torch.equal(params, params_before)


def test_layer_density_pass_matches_the_plain_expressions_in_float64() -> None:
    layer = shifted(MaskedAffineAutoregressive(4, (16, 16), context_dim=2).double())
    x = torch.randn(25, 4, dtype=torch.float64, requires_grad=True)
    context = torch.randn(25, 2, dtype=torch.float64)
    z, log_det = layer(x, context)
    shift, log_scale = layer.shift_and_log_scale(x, context)
    torch.testing.assert_close(z, (x - shift) * torch.exp(-log_scale), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, -log_scale.sum(dim=1), rtol=1e-12, atol=1e-12)


def test_fused_kernels_step_aside_under_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(4, 3)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not _fused_available(x)


@needs_onednn
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_torch_compile_evaluates_a_flow_on_a_large_batch() -> None:
    # Large enough for the oneDNN path in eager mode, which torch.compile cannot lower.
    flow = shifted(MAF(4, n_layers=2, hidden=(128, 128)))
    x = torch.randn(HAND_GRADIENT_MIN_BATCH, 4)
    with torch.no_grad():
        compiled = torch.compile(flow.log_prob)(x)
        eager = flow.log_prob(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-4)
