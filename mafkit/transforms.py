"""Flow layers: each maps data to noise and back, returning ``(output, log_det)``.

Convention for every transform ``t``: ``t.forward(x, context)`` goes in the data-to-noise
direction and returns ``(z, log|det dz/dx|)``; ``t.inverse(z, context)`` goes back and returns
``(x, log|det dx/dz|)``, so the two log-dets are opposite at matching points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_positive_int
from .incremental import incremental_inverse
from .made import MADE
from .masks import check_order

__all__ = [
    "Transform",
    "MaskedAffineAutoregressive",
    "Permutation",
    "BatchNorm",
    "Inverted",
    "soft_clamp",
    "DEFAULT_SCALE_BOUND",
]

#: The default bound of every layer's log-scale: a layer scales each variable by a factor
#: between exp(-5) and exp(5) (see ``benchmarks/RESULTS.md`` for how it was chosen).
DEFAULT_SCALE_BOUND = 5.0


class Transform(nn.Module):
    """Base class: an invertible map with a tractable log-determinant."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise. x: (batch, dim). Returns z (batch, dim), log|det dz/dx| (batch,)."""
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data. z: (batch, dim). Returns x (batch, dim), log|det dx/dz| (batch,)."""
        raise NotImplementedError


def soft_clamp(log_scale: Tensor, bound: float) -> Tensor:
    """Squash a raw log-scale into ``(-bound, bound)``.

    ``s / (1 + |s| / bound)`` has slope 1 at 0, is continuously differentiable (C^1; its
    second derivative jumps at 0) and keeps ``exp(s)`` within ``(e^-bound, e^bound)``, so
    neither direction of the flow can overflow, while scales both above and below one stay
    reachable (the flow is not limited to contraction). zuko uses the same form.

    Args:
        log_scale: any shape.
        bound: the bound B > 0.

    Returns:
        a tensor of the same shape, in ``(-bound, bound)``.

    Example:
        >>> soft_clamp(torch.tensor([0.0, 5.0, 1e6]), 5.0)
        tensor([0.0000, 2.5000, 5.0000])
    """
    return log_scale / (1 + log_scale.abs() / bound)


class MaskedAffineAutoregressive(Transform):
    """The MAF layer: an affine map whose shift and log-scale come from a MADE.

    Data to noise (parallel, one MADE pass)::

        z_i = (x_i - mu_i(x_<i)) * exp(-alpha_i(x_<i)),   log|det dz/dx| = -sum_i alpha_i

    Noise to data (sequential): ``x_i = mu_i + exp(alpha_i) * z_i`` in the layer's order.
    :meth:`inverse` computes each hidden unit of the MADE once
    (:func:`mafkit.incremental.incremental_inverse`); :meth:`inverse_by_passes` is the plain
    version with ``dim`` full MADE passes, each fixing one more variable.

    **The one hook.** Every direction turns the MADE's outputs into (shift, log-scale) with
    :meth:`affine_params`, and only there. A subclass that overrides it (another bound or
    form of the log-scale, say) gets a matching forward, inverse, ``log_prob`` and
    ``sample``, with no other method to rewrite. It must act on each variable separately
    (the sequential inverse calls it with one variable at a time).

    Args:
        dim: number of variables D.
        hidden: MADE hidden widths.
        context_dim: context size, 0 if unconditional.
        order: the layer's autoregressive order (None: natural).
        scale_bound: the log-scale is soft-clamped to ``(-scale_bound, scale_bound)``.
        activation: hidden non-linearity of the MADE.

    Example:
        >>> layer = MaskedAffineAutoregressive(3, hidden=(8,))
        >>> x = torch.randn(5, 3)
        >>> z, log_det = layer(x)
        >>> torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
        True

    References:
        Papamakarios, Pavlakou and Murray (2017). Masked Autoregressive Flow for Density
        Estimation. arXiv:1705.07057. Explained in chapter 2.
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
        super().__init__()
        if isinstance(scale_bound, bool) or not isinstance(scale_bound, (int, float)):
            raise TypeError(f"scale_bound must be a number, got {type(scale_bound).__name__}")
        if not scale_bound > 0 or not math.isfinite(scale_bound):
            raise ValueError(f"scale_bound must be > 0 and finite, got {scale_bound}")
        self.made = MADE(dim, hidden, 2, context_dim, order, activation)
        self.dim = dim
        self.scale_bound = float(scale_bound)
        # Start every layer near the identity map, which keeps deep stacks stable early on.
        output = self.made.output_layer
        nn.init.zeros_(output.bias)
        output.weight.data.mul_(1e-2)

    @property
    def order(self) -> Tensor:
        """(dim,) the layer's autoregressive order."""
        return self.made.order

    def affine_params(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Turn the MADE's outputs into a shift and a log-scale, variable by variable.

        The default keeps the first output as the shift ``mu`` and soft-clamps the second
        into ``(-scale_bound, scale_bound)`` (:func:`soft_clamp`) to give ``alpha``.

        Args:
            params: (batch, n, 2), the MADE's outputs for n variables (n = dim in a
                parallel pass, 1 in a step of the sequential inverse).

        Returns:
            shift (batch, n) and log-scale (batch, n).
        """
        return params[..., 0], soft_clamp(params[..., 1], self.scale_bound)

    def shift_and_log_scale(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One MADE pass and :meth:`affine_params`: x (batch, dim) -> shift, log-scale.

        Returns:
            shift (batch, dim) and log-scale (batch, dim); entry i depends only on the
            variables before i in the layer's order (and on the context).
        """
        return self.affine_params(self.made.raw_forward(x, context))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise: x (batch, dim) -> z (batch, dim), log|det dz/dx| (batch,)."""
        shift, log_scale = self.shift_and_log_scale(x, context)
        z = (x - shift) * torch.exp(-log_scale)
        return z, -log_scale.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data: z (batch, dim) -> x (batch, dim), log|det dx/dz| (batch,).

        Sequential in the layer's order, each hidden unit computed once
        (:func:`mafkit.incremental.incremental_inverse`); the same numbers as
        :meth:`inverse_by_passes` up to rounding.
        """
        return incremental_inverse(self, z, context)

    def inverse_by_passes(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The plain inverse: ``dim`` full MADE passes, each fixing one more variable.

        Start from x = 0; after pass k the first k variables of the order are exact,
        because variable k's shift and log-scale read only variables before it.

        Args:
            z: (batch, dim) noise.
            context: (batch, context_dim) or None.

        Returns:
            x (batch, dim) and log|det dx/dz| = sum of the log-scales, (batch,).
        """
        x = torch.zeros_like(z)
        for _ in range(self.dim):
            shift, log_scale = self.shift_and_log_scale(x, context)
            x = shift + torch.exp(log_scale) * z
        return x, log_scale.sum(dim=1)


class Permutation(Transform):
    """Reorder the variables: ``z = x[:, permutation]``; volume-preserving (log-det 0).

    Args:
        permutation: (dim,) a permutation of 0..dim-1.
    """

    def __init__(self, permutation: Sequence[int] | Tensor) -> None:
        super().__init__()
        permutation = check_order(permutation, len(permutation))
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.permutation], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_permutation], z.new_zeros(z.shape[0])


class BatchNorm(Transform):
    """Batch normalisation as a flow layer, with its log-determinant.

    Data to noise: ``z = exp(log_gamma) * (x - m) / sqrt(v + eps) + beta``, with
    ``log|det dz/dx| = sum(log_gamma) - 0.5 * sum(log(v + eps))`` for the same ``m, v`` that
    the transform used.

    In training mode ``m, v`` are the batch's mean and (biased) variance and the running
    averages are updated. In evaluation mode, and in ``inverse`` always, the stored
    statistics are used, so a point's density does not depend on the rest of its batch.
    :func:`mafkit.fit` replaces the running averages by the statistics of the whole training
    set when it finishes (:meth:`set_statistics`), as Papamakarios et al. (2017) do: running
    averages lag behind weights that changed during training, full-set statistics do not.

    Args:
        dim: number of variables D.
        momentum: weight of the new batch in the running averages.
        eps: added to the variance for stability.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int(dim, "dim")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance to normalise ``x`` (batch, dim) with: (dim,), (dim,)."""
        if not self.training:
            return self.running_mean, self.running_var
        if x.shape[0] < 2:
            raise ValueError(
                f"BatchNorm in training mode needs at least 2 points, got {x.shape[0]}; "
                "call model.eval() to evaluate single points"
            )
        mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return mean, var

    @torch.no_grad()
    def set_statistics(self, x: Tensor) -> None:
        """Store the mean and variance of ``x`` (n, dim) as the evaluation statistics."""
        self.running_mean.copy_(x.mean(dim=0))
        self.running_var.copy_(x.var(dim=0, unbiased=False))

    def log_det(self, var: Tensor) -> Tensor:
        """``sum(log_gamma) - 0.5 * sum(log(var + eps))``, a scalar."""
        return self.log_gamma.sum() - 0.5 * torch.log(var + self.eps).sum()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self.statistics(x)
        z = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        return z, self.log_det(var).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self.running_mean, self.running_var
        x = (z - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps) + mean
        return x, (-self.log_det(var)).expand(z.shape[0])


class Inverted(Transform):
    """Swap the two directions of a transform (sharing its parameters).

    ``Inverted(t).forward`` is ``t.inverse`` and vice versa. Wrapping the MAF layer this
    way gives the IAF layer: the parallel pass now runs from noise to data.
    """

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.forward(z, context)
