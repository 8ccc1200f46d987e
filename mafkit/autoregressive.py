"""MADE used directly as a density: mixture-of-Gaussians and Bernoulli conditionals."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_context, check_points, check_positive_int
from .distributions import LOG_2PI
from .made import MADE

__all__ = ["MADEMoG", "BernoulliMADE"]


class _AutoregressiveDensity(nn.Module):
    """Shared plumbing: a MADE, argument checks and the sequential sampling loop."""

    made: MADE

    def _params(self, x: Tensor, context: Tensor | None) -> Tensor:
        check_points(x, self.made.dim)
        check_context(context, self.made.context_dim, x.shape[0])
        return self.made.raw_forward(x, context)

    def _sample_one(self, params: Tensor) -> Tensor:
        """Draw every variable from its conditional given ``params`` (n, dim, n_params)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """Draw n points sequentially (``dim`` MADE passes): (n, dim).

        Args:
            n: number of points.
            context: (n, context_dim) if the model is conditional.
        """
        check_positive_int(n, "n")
        check_context(context, self.made.context_dim, n)
        weight = self.made.first.weight
        x = torch.zeros(n, self.made.dim, device=weight.device, dtype=weight.dtype)
        for variable in self.made.order:
            draw = self._sample_one(self.made.raw_forward(x, context))
            x[:, variable] = draw[:, variable]
        return x


class MADEMoG(_AutoregressiveDensity):
    """MADE whose conditionals are mixtures of K Gaussians (the paper's "MADE MoG").

    ``p(x_i | x_<i) = sum_k w_ik N(x_i; m_ik, exp(l_ik)^2)`` with ``w_i = softmax``.

    Args:
        dim: number of variables D.
        n_components: K.
        hidden, context_dim, order, activation: as in :class:`mafkit.MADE`.
    """

    def __init__(
        self,
        dim: int,
        n_components: int = 10,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        order: Sequence[int] | Tensor | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.n_components = check_positive_int(n_components, "n_components")
        self.made = MADE(dim, hidden, 3 * n_components, context_dim, order, activation)
        # Spread the initial means so the components do not all start on top of each other.
        with torch.no_grad():
            bias = self.made.rest[-1].bias.view(dim, 3, n_components)
            bias[:, 1] = torch.randn(dim, n_components)

    def _mixture(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, means, log_stds = params.unflatten(2, (3, self.n_components)).unbind(2)
        return torch.log_softmax(logits, dim=2), means, log_stds.clamp(-7, 7)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x | context): x (batch, dim) -> (batch,)."""
        log_w, means, log_stds = self._mixture(self._params(x, context))
        diff = (x[:, :, None] - means) * torch.exp(-log_stds)
        log_normal = -0.5 * (diff.square() + LOG_2PI) - log_stds
        return torch.logsumexp(log_w + log_normal, dim=2).sum(dim=1)

    def _sample_one(self, params: Tensor) -> Tensor:
        log_w, means, log_stds = self._mixture(params)
        k = torch.distributions.Categorical(logits=log_w).sample()[..., None]
        mean, log_std = means.gather(2, k)[..., 0], log_stds.gather(2, k)[..., 0]
        return mean + torch.exp(log_std) * torch.randn_like(mean)


class BernoulliMADE(_AutoregressiveDensity):
    """MADE for binary data: ``p(x_i = 1 | x_<i) = sigmoid(a_i(x_<i))``.

    Args:
        dim, hidden, context_dim, order, activation: as in :class:`mafkit.MADE`.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        order: Sequence[int] | Tensor | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.made = MADE(dim, hidden, 1, context_dim, order, activation)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x | context) for x in {0, 1}: (batch, dim) -> (batch,)."""
        logits = self._params(x, context)[..., 0]
        if not torch.all((x == 0) | (x == 1)):
            raise ValueError("BernoulliMADE expects x with entries 0 or 1")
        return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(
            dim=1
        )

    def _sample_one(self, params: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params[..., 0]))
