"""MADE as a density: MADE MoG and Bernoulli MADE are normalised and autoregressive."""

import itertools

import pytest
import torch
from conftest import perturbed

from mafkit import MAF, BatchNorm, BernoulliMADE, MADEMoG, MAFMoG, MaskedAffineAutoregressive
from mafkit.checks import (
    autoregressive_violations,
    grid_2d,
    integral_2d,
    jacobian,
    log_det_error,
)


def test_made_mog_density_integrates_to_one() -> None:
    model = MADEMoG(2, n_components=3, hidden=(16,))
    assert abs(integral_2d(model.log_prob, ((-8, 8), (-8, 8)), n=400) - 1) < 2e-3


def test_bernoulli_made_probabilities_sum_to_one_over_all_binary_vectors() -> None:
    model = BernoulliMADE(4, hidden=(8,))
    grid = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    assert torch.isclose(model.log_prob(grid).exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_made_mog_mixture_parameters_are_autoregressive() -> None:
    model = MADEMoG(4, n_components=2, hidden=(8,), order=[3, 1, 0, 2]).double()
    jac = jacobian(lambda v: model.made(v).sum(dim=2), torch.randn(3, 4, dtype=torch.float64))
    assert not autoregressive_violations(jac, model.made.order).any()


@pytest.mark.parametrize("model", [MADEMoG(3, 2, (8,)), BernoulliMADE(3, (8,))])
def test_samples_have_the_right_shape(model) -> None:
    assert model.sample(7).shape == (7, 3)


def test_bernoulli_made_rejects_non_binary_data() -> None:
    with pytest.raises(ValueError, match="entries 0 or 1"):
        BernoulliMADE(2).log_prob(torch.tensor([[0.5, 1.0]]))


def test_made_mog_samples_follow_its_density() -> None:
    torch.manual_seed(0)
    model = MADEMoG(2, n_components=2, hidden=(8,))
    x = model.sample(4000)
    # For samples from p, E[log p(x)] is minus the entropy, computed here by quadrature.
    grid, area = grid_2d(((-8, 8), (-8, 8)), 400)
    with torch.no_grad():
        lp = model.log_prob(grid)
        neg_entropy = (lp.exp() * lp).sum() * area
        assert abs(model.log_prob(x).mean() - neg_entropy) < 0.1


# ------------------------------------------------------------------------ MAF MoG


def test_maf_mog_is_maf_layers_on_a_made_mog_base() -> None:
    flow = MAFMoG(3, n_layers=5, n_components=4, hidden=(8,))
    assert len(flow.transforms) == 5
    assert all(isinstance(t, MaskedAffineAutoregressive) for t in flow.transforms)
    assert isinstance(flow.base, MADEMoG) and flow.base.n_components == 4
    # The base continues the alternation of orders: the reverse of the last layer's.
    assert flow.base.made.order.tolist() == flow.transforms[-1].order.flip(0).tolist()


def test_maf_mog_log_prob_is_the_made_mog_of_the_layers_output_plus_the_log_det() -> None:
    flow = perturbed(MAFMoG(3, n_layers=2, n_components=3, hidden=(8,)), 0.1).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    z, log_det = flow.forward(x)
    torch.testing.assert_close(flow.log_prob(x), flow.base.log_prob(z) + log_det)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_maf_mog_density_integrates_to_one(batch_norm: bool) -> None:
    flow = perturbed(
        MAFMoG(2, n_layers=2, n_components=3, hidden=(16,), batch_norm=batch_norm), 0.1
    ).eval()
    assert abs(integral_2d(flow.log_prob, ((-10, 10), (-10, 10)), n=400) - 1) < 3e-3


@pytest.mark.parametrize("context", [[-1.0], [1.5]])
def test_conditional_maf_mog_integrates_to_one_for_each_context(context: list) -> None:
    flow = perturbed(MAFMoG(2, n_layers=2, n_components=2, hidden=(16,), context_dim=1), 0.1)
    c = torch.tensor(context)
    total = integral_2d(lambda g: flow.log_prob(g, c.expand(len(g), 1)), ((-10, 10),) * 2, n=300)
    assert abs(total - 1) < 3e-3


def test_maf_mog_base_receives_the_context() -> None:
    flow = MAFMoG(2, n_layers=1, n_components=2, hidden=(8,), context_dim=3)
    assert flow.base.context_dim == 3
    x, c = torch.randn(4, 2), torch.randn(4, 3)
    z, log_det = flow.forward(x, c)
    torch.testing.assert_close(flow.log_prob(x, c), flow.base.log_prob(z, c) + log_det)


def test_maf_mog_samples_follow_its_density() -> None:
    flow = perturbed(MAFMoG(2, n_layers=2, n_components=2, hidden=(16,)), 0.1)
    with torch.no_grad():
        x = flow.sample(4000)
        grid, area = grid_2d(((-10, 10), (-10, 10)), 400)
        lp = flow.log_prob(grid)
        neg_entropy = (lp.exp() * lp).sum() * area
        # E[log p(x)] over samples from p is minus the entropy (quadrature).
        assert abs(flow.log_prob(x).mean() - neg_entropy) < 0.1


def test_maf_mog_sample_and_log_prob_agree() -> None:
    flow = perturbed(MAFMoG(3, n_layers=2, n_components=2, hidden=(8,), context_dim=1), 0.2)
    flow = flow.double()
    c = torch.randn(1, dtype=torch.float64)
    x, log_p = flow.sample_and_log_prob(20, c)
    torch.testing.assert_close(flow.log_prob(x, c.expand(20, 1)), log_p)


def test_maf_mog_log_det_matches_slogdet() -> None:
    flow = perturbed(MAFMoG(3, n_layers=3, n_components=2, hidden=(8,), batch_norm=True))
    flow = flow.double().eval()
    assert log_det_error(flow, torch.randn(3, 3, dtype=torch.float64)) < 1e-9


def test_maf_mog_with_batch_norm_has_it_before_the_base_too() -> None:
    flow = MAFMoG(2, n_layers=3, hidden=(8,), batch_norm=True)
    kinds = [type(t) for t in flow.transforms]
    assert kinds.count(BatchNorm) == 3 and kinds[-1] is BatchNorm


def test_maf_mog_is_not_a_maf_with_a_mixture_base() -> None:
    assert not isinstance(MAF(2, base="mog").base, MADEMoG)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dim": 0}, ValueError, "dim must be >= 1"),
        ({"dim": 2, "n_components": 0}, ValueError, "n_components must be >= 1"),
        ({"dim": 2, "n_layers": 1.5}, TypeError, "n_layers must be an int"),
        ({"dim": 2, "order": "sideways"}, ValueError, "order must be"),
    ],
)
def test_maf_mog_rejects_nonsense_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MAFMoG(**kwargs)


def test_maf_mog_rejects_points_of_the_wrong_dimension_and_a_missing_context() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        MAFMoG(2).log_prob(torch.randn(4, 3))
    with pytest.raises(ValueError, match="conditional"):
        MAFMoG(2, context_dim=1).log_prob(torch.randn(4, 2))
