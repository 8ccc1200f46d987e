"""MADE as a density: MADE MoG and Bernoulli MADE are normalised and autoregressive."""

import itertools

import pytest
import torch

from mafkit import BernoulliMADE, MADEMoG
from mafkit.checks import autoregressive_violations, integral_2d, jacobian


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
    from mafkit.checks import grid_2d

    grid, area = grid_2d(((-8, 8), (-8, 8)), 400)
    with torch.no_grad():
        lp = model.log_prob(grid)
        neg_entropy = (lp.exp() * lp).sum() * area
        assert abs(model.log_prob(x).mean() - neg_entropy) < 0.1
