"""Densities built on one MADE (Gaussian, mixture-of-Gaussians and Bernoulli conditionals),
and the MAF paper's MAF MoG: a MAF whose base density is a MADE MoG."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_context, check_points, check_positive_int
from .distributions import _LOG_2PI
from .flows import MAF, Flow, _embedded_size, layer_orders, maf_layers
from .made import MADE
from .masks import check_order
from .transforms import DEFAULT_SCALE_BOUND, BatchNorm

__all__ = ["GaussianMADE", "MADEMoG", "BernoulliMADE", "MAFMoG"]


class _AutoregressiveDensity(nn.Module):
    """Shared plumbing: a MADE, argument checks and the sequential sampling loop."""

    made: MADE

    @property
    def dim(self) -> int:
        """Number of variables D."""
        return self.made.dim

    @property
    def context_dim(self) -> int:
        """Size of the context; 0 if unconditional."""
        return self.made.context_dim

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
        weight = self.made.input_layer.weight
        x = torch.zeros(n, self.made.dim, device=weight.device, dtype=weight.dtype)
        for variable in self.made.order:
            draw = self._sample_one(self.made.raw_forward(x, context))
            x[:, variable] = draw[:, variable]
        return x


class GaussianMADE(MAF):
    """A MADE whose conditionals are Gaussians: exactly a one-layer MAF.

    ``p(x_i | x_<i) = N(x_i; mu_i, exp(alpha_i)^2)`` is the same density as pushing x through
    ``z_i = (x_i - mu_i) exp(-alpha_i)`` and scoring z under N(0, I). Explained in chapter 1.

    Args:
        dim, hidden, context_dim, scale_bound, activation: as in :class:`MAF`.
        order: a single permutation of ``0..dim-1``, or None for the natural order.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        order: Sequence[int] | Tensor | None = None,
        scale_bound: float = DEFAULT_SCALE_BOUND,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        check_positive_int(dim, "dim")
        super().__init__(
            dim,
            1,
            hidden,
            context_dim,
            order=[check_order(order, dim)],
            scale_bound=scale_bound,
            activation=activation,
        )


class MADEMoG(_AutoregressiveDensity):
    """MADE whose conditionals are mixtures of C Gaussians (the paper's "MADE MoG").

    ``p(x_i | x_<i) = sum_c w_ic N(x_i; m_ic, exp(l_ic)^2)`` with ``w_i = softmax``; the
    means start spread out (random output biases), the log-standard deviations are clamped
    to [-7, 7].

    Args:
        dim: number of variables D.
        n_components: C.
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
            bias = self.made.output_layer.bias.view(dim, 3, n_components)
            bias[:, 1] = torch.randn(dim, n_components)

    def _mixture(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, means, log_stds = params.unflatten(2, (3, self.n_components)).unbind(2)
        return torch.log_softmax(logits, dim=2), means, log_stds.clamp(-7, 7)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x | context): x (batch, dim) -> (batch,)."""
        log_w, means, log_stds = self._mixture(self._params(x, context))
        diff = (x[:, :, None] - means) * torch.exp(-log_stds)
        log_normal = -0.5 * (diff.square() + _LOG_2PI) - log_stds
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


class MAFMoG(Flow):
    """The MAF paper's "MAF MoG": a MAF whose base density is a MADE MoG.

    ``log p(x) = log p_MADE MoG(z) + log|det dz/dx|`` with ``z`` the output of ``n_layers``
    MAF layers. The base is a :class:`MADEMoG` (every conditional a mixture of
    ``n_components`` Gaussians) with its own order: the reverse of the last layer's
    (continuing the alternation of ``order="reversed"``), or a fresh random one with
    ``order="random"``. With ``batch_norm`` a :class:`BatchNorm` layer also sits between the
    last MAF layer and the base, as in the paper's code. A conditional MAF MoG passes the
    (embedded) context to every layer and to the base.

    This is not ``MAF(base="mog")``, whose base is one mixture with fixed weights.

    Sampling draws the base sequentially (a mixture component per variable, not
    differentiable) and runs the layers' sequential inverses.

    Args:
        dim: number of variables D.
        n_layers: number of MAF layers (the paper's "MAF MoG (5)" has 5).
        n_components: mixture components C per conditional of the base.
        hidden: MADE hidden widths (the layers' and the base's).
        context_dim, batch_norm, order, scale_bound, activation, embedding: as in
            :class:`mafkit.MAF`.

    Example:
        >>> flow = MAFMoG(2, n_layers=2, n_components=3, hidden=(16,))
        >>> flow.log_prob(torch.randn(4, 2)).shape, flow.sample(5).shape
        (torch.Size([4]), torch.Size([5, 2]))

    References:
        Papamakarios, Pavlakou and Murray (2017). Masked Autoregressive Flow for Density
        Estimation. arXiv:1705.07057, section 4 and Table 1. Used in chapter 7.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int = 5,
        n_components: int = 10,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        batch_norm: bool = False,
        order: str | Sequence = "reversed",
        scale_bound: float = DEFAULT_SCALE_BOUND,
        activation: type[nn.Module] = nn.ReLU,
        embedding: nn.Module | None = None,
    ) -> None:
        check_positive_int(dim, "dim")
        check_positive_int(n_layers, "n_layers")
        check_positive_int(n_components, "n_components")
        check_positive_int(context_dim, "context_dim", minimum=0)
        layer_context = _embedded_size(embedding, context_dim)
        orders = layer_orders(dim, n_layers, order)
        transforms = maf_layers(
            dim, orders, hidden, layer_context, batch_norm, scale_bound, activation
        )
        if batch_norm:
            transforms.append(BatchNorm(dim))
        base_order = torch.randperm(dim) if order == "random" else orders[-1].flip(0)
        base = MADEMoG(dim, n_components, hidden, layer_context, base_order, activation)
        super().__init__(transforms, base, dim, context_dim, embedding)
