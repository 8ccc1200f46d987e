"""Data for the course: 2-D targets with exact densities, two moons, and sklearn's digits.

Nothing is downloaded: toy data are generated and the digits ship inside scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import check_positive_int
from .distributions import _LOG_2PI

__all__ = [
    "two_moons",
    "ToyDensity",
    "toy_density",
    "TOY_DENSITIES",
    "Digits",
    "load_digits",
    "binarised_digits",
]


def two_moons(n: int, noise: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """Two interleaving half circles with Gaussian noise (as sklearn's ``make_moons``).

    Args:
        n: number of points (split evenly between the moons).
        noise: standard deviation of the Gaussian noise.
        generator: torch generator for reproducible draws (default: the global one).

    Returns:
        (n, 2) float32 points, roughly in [-1, 2] x [-0.5, 1].
    """
    check_positive_int(n, "n")
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.arange(n) % 2 == 0
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], dim=1)
    return points + noise * torch.randn(n, 2, generator=generator)


def _normal_log_prob(x: Tensor, mean: Tensor | float, std: Tensor | float) -> Tensor:
    std = torch.as_tensor(std, dtype=x.dtype)
    return -0.5 * (((x - mean) / std) ** 2 + _LOG_2PI) - torch.log(std)


@dataclass(frozen=True)
class ToyDensity:
    """A 2-D density whose ``log_prob`` is exact, and a sampler for it.

    Attributes:
        name: short name.
        bounds: ((x_min, x_max), (y_min, y_max)) box holding essentially all the mass.
    """

    name: str
    bounds: tuple[tuple[float, float], tuple[float, float]]

    def log_prob(self, x: Tensor) -> Tensor:
        """x: (batch, 2) -> exact log-density (batch,)."""
        x1, x2 = x[:, 0], x[:, 1]
        if self.name == "banana":
            # x1 ~ N(0, 1), x2 | x1 ~ N(x1^2 / 2 - 1, 0.3^2)
            return _normal_log_prob(x1, 0.0, 1.0) + _normal_log_prob(x2, x1**2 / 2 - 1, 0.3)
        if self.name == "ring":
            # A mixture of 8 Gaussians (std 0.25) evenly spaced on a circle of radius 2.
            means = self._ring_means().to(x)
            logs = _normal_log_prob(x[:, None, :], means, 0.25).sum(dim=2)
            return torch.logsumexp(logs, dim=1) - math.log(8)
        if self.name == "bimodal":
            # x1 ~ N(0, 1), x2 | x1 = mixture of N(+-(1 + x1 / 2), 0.25^2): a conditional
            # that no single Gaussian can fit.
            centre = 1 + x1 / 2
            modes = torch.stack(
                [_normal_log_prob(x2, centre, 0.25), _normal_log_prob(x2, -centre, 0.25)], dim=1
            )
            return _normal_log_prob(x1, 0.0, 1.0) + torch.logsumexp(modes, 1) - math.log(2)
        raise ValueError(f"unknown toy density {self.name!r}")

    @staticmethod
    def _ring_means() -> Tensor:
        angle = torch.arange(8) * (2 * math.pi / 8)
        return 2 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n exact samples: (n, 2) float32."""
        check_positive_int(n, "n")
        e = torch.randn(n, 2, generator=generator)
        if self.name == "banana":
            return torch.stack([e[:, 0], e[:, 0] ** 2 / 2 - 1 + 0.3 * e[:, 1]], dim=1)
        if self.name == "ring":
            k = torch.randint(8, (n,), generator=generator)
            return self._ring_means()[k] + 0.25 * e
        if self.name == "bimodal":
            sign = torch.randint(2, (n,), generator=generator) * 2.0 - 1
            return torch.stack([e[:, 0], sign * (1 + e[:, 0] / 2) + 0.25 * e[:, 1]], dim=1)
        raise ValueError(f"unknown toy density {self.name!r}")


TOY_DENSITIES = {
    "banana": ToyDensity("banana", ((-4.0, 4.0), (-2.5, 7.0))),
    "ring": ToyDensity("ring", ((-3.5, 3.5), (-3.5, 3.5))),
    "bimodal": ToyDensity("bimodal", ((-4.0, 4.0), (-4.5, 4.5))),
}


def toy_density(name: str) -> ToyDensity:
    """One of the 2-D targets with an exact density: ``"banana"``, ``"ring"``, ``"bimodal"``."""
    if name not in TOY_DENSITIES:
        raise ValueError(f"name must be one of {sorted(TOY_DENSITIES)}, got {name!r}")
    return TOY_DENSITIES[name]


@dataclass
class Digits:
    """sklearn's 8x8 digits, dequantised and mapped to logit space, split 80/10/10.

    A pixel value v in {0..16} becomes ``u = (v + noise) / 17`` with uniform noise, then
    ``y = logit(alpha + (1 - 2 alpha) u)``. Densities are modelled in y; :meth:`to_pixel_space`
    adds the log-Jacobian of the map so a score is in nats per image on ``[0, 17)^64``.

    Attributes:
        train, val, test: (n, 64) float32 points in logit space.
        alpha: the logit margin.
    """

    train: Tensor
    val: Tensor
    test: Tensor
    alpha: float
    train_pixels: Tensor | None = None

    def to_logit(self, v: Tensor) -> Tensor:
        """Map dequantised pixel values v in [0, 17) to logit space: (n, 64) -> (n, 64)."""
        p = self.alpha + (1 - 2 * self.alpha) * (v / 17)
        return torch.log(p) - torch.log1p(-p)

    def redequantise_train(self, generator: torch.Generator | None = None) -> Tensor:
        """The training images with fresh uniform noise, in logit space: (n_train, 64).

        Drawing new noise every epoch (``fit(..., resample=digits.redequantise_train)``)
        keeps a flow from fitting the particular noise of one draw, which is what ends
        training early on a set of only 1437 images.
        """
        if self.train_pixels is None:
            raise ValueError("this Digits was built without its training pixels")
        noise = torch.rand(self.train_pixels.shape, generator=generator)
        return self.to_logit(self.train_pixels + noise)

    def log_det_to_pixels(self, y: Tensor) -> Tensor:
        """log|det dy/dv| of the map from pixel values v to logit space: (n, 64) -> (n,)."""
        p = torch.sigmoid(y)
        scale = (1 - 2 * self.alpha) / 17
        return (math.log(scale) - torch.log(p) - torch.log1p(-p)).sum(dim=1)

    def to_pixel_space(self, log_prob_y: Tensor, y: Tensor) -> Tensor:
        """Turn log-densities in logit space into log-densities of pixel values (n,)."""
        return log_prob_y + self.log_det_to_pixels(y)

    def to_images(self, y: Tensor) -> Tensor:
        """Map logit-space points (n, 64) back to images (n, 8, 8) with values in [0, 17)."""
        u = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        return (17 * u).clamp(0, 17).view(-1, 8, 8)


def _digit_pixels() -> Tensor:
    from sklearn.datasets import load_digits as sklearn_digits

    return torch.as_tensor(sklearn_digits().data, dtype=torch.float32)


def _split(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def load_digits(alpha: float = 0.05, seed: int = 0) -> Digits:
    """Load the digits, dequantise them and split 80/10/10 (1437/179/181 images).

    Args:
        alpha: logit margin, in (0, 0.5).
        seed: seed of the split and of the dequantisation noise.

    Returns:
        a :class:`Digits` in logit space.
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    pixels = _digit_pixels()
    noise = torch.rand(pixels.shape, generator=torch.Generator().manual_seed(seed + 1))
    empty = torch.empty(0, 64)
    y = Digits(empty, empty, empty, alpha).to_logit(pixels + noise)
    train, val, test = _split(len(y), seed)
    return Digits(y[train], y[val], y[test], alpha, pixels[train])


def binarised_digits(threshold: float = 8.0, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """The digits as binary images (pixel > threshold), split 80/10/10.

    Returns:
        train, val, test: (n, 64) float32 tensors of zeros and ones.
    """
    x = (_digit_pixels() > threshold).float()
    train, val, test = _split(len(x), seed)
    return x[train], x[val], x[test]
