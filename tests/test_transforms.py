"""Flow layers: log-det equals slogdet of the autograd Jacobian; inverse undoes forward."""

import pytest
import torch
from conftest import float64_inputs, perturbed

from mafkit import (
    MAF,
    BatchNorm,
    Flow,
    Inverted,
    MaskedAffineAutoregressive,
    Permutation,
    StandardNormal,
    soft_clamp,
)
from mafkit.checks import (
    autoregressive_violations,
    integral_2d,
    inverse_error,
    jacobian,
    log_det_error,
)


def _layer(dim: int, context_dim: int = 0, order=None) -> MaskedAffineAutoregressive:
    layer = MaskedAffineAutoregressive(dim, hidden=(16,), context_dim=context_dim, order=order)
    return perturbed(layer).double()


def _inputs(dim: int, context_dim: int, n: int = 3):
    return float64_inputs(dim, context_dim, n)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("context_dim", [0, 2])
def test_affine_layer_log_det_matches_slogdet(dim: int, context_dim: int) -> None:
    layer = _layer(dim, context_dim, order=torch.randperm(dim))
    x, c = _inputs(dim, context_dim)
    assert log_det_error(layer, x, c) < 1e-10


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("context_dim", [0, 2])
def test_affine_layer_inverse_undoes_forward(dim: int, context_dim: int) -> None:
    layer = _layer(dim, context_dim, order=list(range(dim))[::-1])
    x, c = _inputs(dim, context_dim)
    assert inverse_error(layer, x, c) < 1e-10


@pytest.mark.parametrize("dim", [2, 5])
def test_affine_layer_jacobian_is_triangular_in_its_order(dim: int) -> None:
    layer = _layer(dim, order=torch.randperm(dim))
    jac = jacobian(lambda v: layer(v)[0], torch.randn(3, dim, dtype=torch.float64))
    off_diagonal = jac - torch.diag_embed(torch.diagonal(jac, dim1=1, dim2=2))
    assert not autoregressive_violations(off_diagonal, layer.order).any()


def test_soft_clamp_is_bounded_and_identity_near_zero() -> None:
    s = torch.tensor([-1e6, -1e-4, 0.0, 1e-4, 1e6])
    clamped = soft_clamp(s, 5.0)
    assert clamped.abs().max() < 5.0
    assert torch.allclose(clamped[1:4], s[1:4], atol=1e-8)


def test_soft_clamp_allows_expansion_as_well_as_contraction() -> None:
    scales = torch.exp(soft_clamp(torch.tensor([-3.0, 3.0]), 5.0))
    assert scales[0] < 0.2 and scales[1] > 5


def test_extreme_network_outputs_keep_the_layer_finite() -> None:
    layer = MaskedAffineAutoregressive(3, hidden=(8,))
    with torch.no_grad():
        layer.made.output_layer.bias.fill_(1e4)
    z, log_det = layer(torch.randn(4, 3))
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()


@pytest.mark.parametrize("bound", [0.0, -1.0, float("inf"), float("nan")])
def test_scale_bound_must_be_positive_and_finite(bound: float) -> None:
    with pytest.raises(ValueError, match="scale_bound must be > 0 and finite"):
        MaskedAffineAutoregressive(3, scale_bound=bound)


def test_scale_bound_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="scale_bound must be a number"):
        MaskedAffineAutoregressive(3, scale_bound="5")


# ------------------------------------------------------------ the one element-wise hook


class TanhScale(MaskedAffineAutoregressive):
    """Another parametrisation: alpha = 2 tanh(raw / 2), shift scaled by 3."""

    def affine_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 3 * params[..., 0], 2 * torch.tanh(params[..., 1] / 2)


def _tanh_layer(dim: int, context_dim: int = 0, scale: float = 0.5) -> TanhScale:
    return perturbed(TanhScale(dim, (16,), context_dim, torch.randperm(dim)), scale).double()


@pytest.mark.parametrize("context_dim", [0, 2])
def test_a_subclass_hook_is_used_by_forward_and_inverse(context_dim: int) -> None:
    layer = _tanh_layer(4, context_dim)
    x, c = _inputs(4, context_dim, n=6)
    params = layer.made(x, c)
    z, log_det = layer(x, c)
    expected_z = (x - 3 * params[..., 0]) * torch.exp(-2 * torch.tanh(params[..., 1] / 2))
    torch.testing.assert_close(z, expected_z)
    torch.testing.assert_close(layer.inverse(z, c)[0], x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.inverse_by_passes(z, c)[0], x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.inverse(z, c)[1], -log_det, rtol=1e-10, atol=1e-10)


def test_a_subclass_hook_gives_log_dets_equal_to_slogdet() -> None:
    layer = _tanh_layer(4, 2)
    x, c = _inputs(4, 2)
    assert log_det_error(layer, x, c) < 1e-10
    assert log_det_error(Inverted(layer), x, c) < 1e-10


def test_a_flow_of_subclassed_layers_samples_what_it_scores() -> None:
    layers = [_tanh_layer(2, scale=0.1) for _ in range(3)]
    flow = Flow(layers, StandardNormal(2).double(), dim=2)
    x, log_p = flow.sample_and_log_prob(50)
    torch.testing.assert_close(flow.log_prob(x), log_p, rtol=1e-9, atol=1e-9)
    total = integral_2d(lambda g: flow.log_prob(g.double()), ((-15, 15), (-15, 15)), n=400)
    assert abs(total - 1) < 5e-3


def test_shift_and_log_scale_is_the_made_pass_followed_by_the_hook() -> None:
    layer = _tanh_layer(3)
    x, _ = _inputs(3, 0)
    shift, log_scale = layer.shift_and_log_scale(x)
    expected = layer.affine_params(layer.made(x))
    assert torch.equal(shift, expected[0]) and torch.equal(log_scale, expected[1])


def test_the_default_hook_soft_clamps_the_log_scale() -> None:
    layer = MaskedAffineAutoregressive(2, scale_bound=3.0)
    params = torch.tensor([[[1.0, 100.0], [-2.0, -0.5]]])
    shift, log_scale = layer.affine_params(params)
    assert torch.equal(shift, torch.tensor([[1.0, -2.0]]))
    assert torch.equal(log_scale, soft_clamp(torch.tensor([[100.0, -0.5]]), 3.0))


def test_maf_layers_start_near_the_identity() -> None:
    flow = MAF(3, n_layers=2, hidden=(16,))
    x = torch.randn(20, 3)
    z, log_det = flow(x)
    assert (z - x).abs().max() < 0.05 and log_det.abs().max() < 0.05


def _batch_norm(dim: int) -> BatchNorm:
    bn = BatchNorm(dim).double()
    with torch.no_grad():
        bn.log_gamma.normal_()
        bn.beta.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return bn


def test_batch_norm_starts_with_unit_running_variance() -> None:
    assert torch.equal(BatchNorm(3).running_var, torch.ones(3))


@pytest.mark.parametrize("dim", [1, 4])
def test_batch_norm_log_det_matches_slogdet_in_eval_mode(dim: int) -> None:
    bn = _batch_norm(dim).eval()
    x, _ = _inputs(dim, 0)
    assert log_det_error(bn, x) < 1e-12
    assert inverse_error(bn, x) < 1e-12


def test_batch_norm_training_log_det_uses_the_batch_variance() -> None:
    bn = _batch_norm(3).train()
    x = 2 + 3 * torch.randn(64, 3, dtype=torch.float64)
    _, log_det = bn(x)
    var = x.var(dim=0, unbiased=False)
    expected = bn.log_gamma.sum() - 0.5 * torch.log(var + bn.eps).sum()
    assert torch.allclose(log_det, expected.expand(64))
    # The same map with those statistics frozen has exactly that Jacobian.
    bn.set_statistics(x)
    bn.eval()
    assert log_det_error(bn, x[:3]) < 1e-12
    assert torch.allclose(bn(x[:3])[1], expected.expand(3))


def test_batch_norm_in_eval_mode_scores_a_point_independently_of_its_batch() -> None:
    bn = _batch_norm(2).eval()
    x = torch.randn(10, 2, dtype=torch.float64)
    alone = bn(x[:1])[0]
    with_others = bn(torch.cat([x[:1], 100 + x[1:]]))[0][:1]
    assert torch.equal(alone, with_others)


def test_batch_norm_training_needs_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        BatchNorm(2).train()(torch.randn(1, 2))


def test_batch_norm_training_updates_running_averages() -> None:
    bn = BatchNorm(2, momentum=0.5).train()
    x = 4 + torch.randn(100, 2)
    bn(x)
    assert torch.allclose(bn.running_mean, 0.5 * x.mean(0))


def test_permutation_has_zero_log_det_and_inverts() -> None:
    perm = Permutation([2, 0, 1]).double()
    x, _ = _inputs(3, 0)
    assert torch.equal(perm(x)[0], x[:, [2, 0, 1]])
    assert log_det_error(perm, x) < 1e-12 and inverse_error(perm, x) == 0


def test_inverted_swaps_the_directions() -> None:
    layer = _layer(3)
    x, _ = _inputs(3, 0)
    assert torch.equal(Inverted(layer)(x)[0], layer.inverse(x)[0])
    assert torch.equal(Inverted(layer).inverse(x)[0], layer(x)[0])
    assert log_det_error(Inverted(layer), x) < 1e-10


def test_log_det_of_forward_is_minus_sum_of_log_scales() -> None:
    layer = _layer(2)
    x, _ = _inputs(2, 0)
    _, log_scale = layer.shift_and_log_scale(x, None)
    assert torch.allclose(layer(x)[1], -log_scale.sum(1))
