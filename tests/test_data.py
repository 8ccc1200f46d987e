"""Data: exact toy densities are normalised and match their samplers; digits preprocessing."""

import pytest
import torch

from mafkit.checks import grid_2d, integral_2d
from mafkit.data import binarised_digits, load_digits, toy_density, two_moons


@pytest.mark.parametrize("name", ["banana", "ring", "bimodal"])
def test_toy_density_integrates_to_one_on_its_box(name: str) -> None:
    target = toy_density(name)
    assert abs(integral_2d(target.log_prob, target.bounds, n=400) - 1) < 5e-3


@pytest.mark.parametrize("name", ["banana", "ring", "bimodal"])
def test_toy_sampler_matches_its_density(name: str) -> None:
    target = toy_density(name)
    x = target.sample(20000, generator=torch.Generator().manual_seed(0))
    grid, area = grid_2d(target.bounds, 400)
    lp = target.log_prob(grid)
    neg_entropy = (lp.exp() * lp).sum() * area
    assert abs(target.log_prob(x).mean() - neg_entropy) < 0.05


def test_unknown_toy_density_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        toy_density("spiral")


def test_two_moons_has_two_arcs() -> None:
    x = two_moons(1000, noise=0.0)
    assert x.shape == (1000, 2)
    upper = x[::2]
    assert torch.allclose(upper.norm(dim=1), torch.ones(500), atol=1e-5)


def test_digits_split_is_80_10_10_and_disjoint_in_size() -> None:
    digits = load_digits()
    assert [len(digits.train), len(digits.val), len(digits.test)] == [1437, 179, 181]
    assert torch.isfinite(digits.train).all()


def test_digits_pixel_space_jacobian_matches_autograd() -> None:
    digits = load_digits()
    alpha = digits.alpha
    v = torch.rand(3, 64, dtype=torch.float64) * 17

    def to_logit(v: torch.Tensor) -> torch.Tensor:
        p = alpha + (1 - 2 * alpha) * v / 17
        return torch.log(p) - torch.log1p(-p)

    y = to_logit(v)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(to_logit, v[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        assert torch.isclose(digits.log_det_to_pixels(y[i : i + 1])[0], expected)


def test_digits_images_come_back_in_pixel_range() -> None:
    digits = load_digits()
    images = digits.to_images(digits.test[:5])
    assert images.shape == (5, 8, 8)
    assert images.min() >= 0 and images.max() <= 17


def test_alpha_outside_the_unit_half_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        load_digits(alpha=0.7)


def test_binarised_digits_are_zero_one() -> None:
    train, val, test = binarised_digits()
    assert set(train.unique().tolist()) == {0.0, 1.0}


def test_redequantised_training_images_keep_their_pixel_values() -> None:
    digits = load_digits()
    fresh = digits.redequantise_train(torch.Generator().manual_seed(5))
    assert fresh.shape == digits.train.shape
    assert not torch.equal(fresh, digits.train)
    # Same integer pixel values under the noise: floor of the images agrees.
    assert torch.equal(
        digits.to_images(fresh).floor().clamp(max=16), digits.to_images(digits.train).floor()
    )
