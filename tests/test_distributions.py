"""Base densities: normalised, softmax weights, samples where the parameters are."""

import math

import torch

from mafkit import MixtureOfGaussians, StandardNormal
from mafkit.checks import integral_2d


def test_standard_normal_matches_torch() -> None:
    z = torch.randn(5, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(StandardNormal(3).log_prob(z), expected)


def test_mixture_weights_are_positive_and_sum_to_one() -> None:
    mog = MixtureOfGaussians(2, n_components=4)
    with torch.no_grad():
        mog.logits.copy_(torch.tensor([3.0, -2.0, 0.0, 10.0]))
    assert (mog.weights > 0).all()
    assert math.isclose(mog.weights.sum().item(), 1.0, rel_tol=1e-6)


def test_mixture_density_integrates_to_one() -> None:
    mog = MixtureOfGaussians(2, n_components=3)
    with torch.no_grad():
        mog.logits.normal_()
        mog.log_stds.uniform_(-0.5, 0.3)
    assert abs(integral_2d(mog.log_prob, ((-9, 9), (-9, 9)), n=400) - 1) < 1e-3


def test_mixture_means_start_apart() -> None:
    means = MixtureOfGaussians(2, 5).means.detach()
    distances = torch.cdist(means, means) + torch.eye(5) * 1e9
    assert distances.min() > 1e-3


def test_mixture_samples_follow_the_parameters_dtype() -> None:
    assert MixtureOfGaussians(2, 3).double().sample(4).dtype == torch.float64


def test_mixture_samples_have_the_mixture_mean() -> None:
    mog = MixtureOfGaussians(2, 3)
    expected = (mog.weights[:, None] * mog.means).sum(0)
    assert torch.allclose(mog.sample(40000).mean(0), expected.detach(), atol=0.05)
