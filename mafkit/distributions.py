"""Base densities of a flow: the standard normal and a mixture of diagonal Gaussians."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._validation import check_positive_int

__all__ = ["StandardNormal", "MixtureOfGaussians", "check_base"]

_LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    """The standard normal density N(0, I) on R^dim.

    Args:
        dim: number of variables D.

    Example:
        >>> base = StandardNormal(2)
        >>> base.sample(5).shape, base.log_prob(torch.zeros(3, 2)).shape
        (torch.Size([5, 2]), torch.Size([3]))
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        # A zero-size buffer that follows .to(device, dtype), so samples land where the model is.
        self.register_buffer("anchor", torch.zeros(0))

    def log_prob(self, z: Tensor) -> Tensor:
        """z: (batch, dim) -> log N(z; 0, I): (batch,)."""
        return -0.5 * (z.square().sum(dim=1) + self.dim * _LOG_2PI)

    def sample(self, n: int) -> Tensor:
        """Draw n points: (n, dim), on the module's device and dtype."""
        return torch.randn(n, self.dim, device=self.anchor.device, dtype=self.anchor.dtype)


class MixtureOfGaussians(nn.Module):
    """A mixture of K Gaussians with diagonal covariances and learnable everything.

    ``log p(z) = logsumexp_k [log w_k + log N(z; m_k, diag(exp(2 l_k)))]`` with
    ``w = softmax(logits)``, so the weights are positive and sum to one by construction.
    Means start as draws from N(0, I) so that the components differ from the start.

    Args:
        dim: number of variables D.
        n_components: number of components K.
    """

    def __init__(self, dim: int, n_components: int = 10) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.n_components = check_positive_int(n_components, "n_components")
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(torch.randn(n_components, dim))
        self.log_stds = nn.Parameter(torch.zeros(n_components, dim))

    @property
    def weights(self) -> Tensor:
        """(K,) mixture weights, positive and summing to one."""
        return torch.softmax(self.logits, dim=0)

    def log_prob(self, z: Tensor) -> Tensor:
        """z: (batch, dim) -> log p(z): (batch,)."""
        diff = (z[:, None, :] - self.means) * torch.exp(-self.log_stds)  # (batch, K, dim)
        log_normal = -0.5 * (diff.square() + _LOG_2PI).sum(dim=2) - self.log_stds.sum(dim=1)
        return torch.logsumexp(torch.log_softmax(self.logits, dim=0) + log_normal, dim=1)

    def sample(self, n: int) -> Tensor:
        """Draw n points: (n, dim), on the parameters' device and dtype."""
        component = torch.multinomial(self.weights, n, replacement=True)
        noise = torch.randn(n, self.dim, device=self.means.device, dtype=self.means.dtype)
        return self.means[component] + torch.exp(self.log_stds[component]) * noise


def check_base(base: nn.Module, dim: int) -> nn.Module:
    """Check that ``base`` is a density on R^dim with ``log_prob`` and ``sample``."""
    if not (callable(getattr(base, "log_prob", None)) and callable(getattr(base, "sample", None))):
        raise TypeError(f"base must have log_prob and sample methods, got {type(base).__name__}")
    if getattr(base, "dim", dim) != dim:
        raise ValueError(f"base must be a density on R^{dim}, got one on R^{base.dim}")
    return base
