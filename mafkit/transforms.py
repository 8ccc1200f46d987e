"""Flow layers: each maps data to noise and back, returning ``(output, log_det)``.

Convention for every transform ``t``: ``t.forward(x, context)`` goes in the data-to-noise
direction and returns ``(z, log|det dz/dx|)``; ``t.inverse(z, context)`` goes back and returns
``(x, log|det dx/dz|)``, so the two log-dets are opposite at matching points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_positive_int
from .made import MADE, records_small_batch
from .masks import check_order

__all__ = [
    "Transform",
    "MaskedAffineAutoregressive",
    "Permutation",
    "BatchNorm",
    "Inverted",
    "soft_clamp",
]


class Transform(nn.Module):
    """Base class: an invertible map with a tractable log-determinant."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise. x: (batch, dim). Returns z (batch, dim), log|det dz/dx| (batch,)."""
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data. z: (batch, dim). Returns x (batch, dim), log|det dx/dz| (batch,)."""
        raise NotImplementedError


def soft_clamp(log_scale: Tensor, bound: float) -> Tensor:
    """Squash a raw log-scale smoothly into ``(-bound, bound)``.

    ``s / (1 + |s| / bound)`` is the identity near 0 and keeps ``exp(s)`` within
    ``(e^-bound, e^bound)``, so neither direction of the flow can overflow, while scales
    both above and below one remain reachable (the flow is not limited to contraction).
    """
    # In place on the fresh |s| temporary: the same numbers, one allocation less.
    return log_scale / log_scale.abs().div_(bound).add_(1)


class _AffineToNoise(torch.autograd.Function):
    """The element-wise half of a MAF layer, data to noise, with a hand-written gradient.

    From ``x`` (batch, dim) and blocked parameters ``params`` (batch, 2 dim) = [shift,
    raw log-scale]: ``s = soft_clamp(raw, bound)``, ``z = (x - shift) exp(-s)``,
    ``log_det = -sum_i s_i``. The gradient uses ``dz/dx = exp(-s)``, ``dz/dshift = -exp(-s)``,
    ``dz/ds = -z`` and ``ds/draw = 1 / (1 + |raw| / bound)^2``; it takes 7 passes over
    (batch, dim) data where autograd's graph of the same expression takes about 25, and
    writes the parameter gradient straight into one (batch, 2 dim) tensor.
    """

    @staticmethod
    def evaluate(x: Tensor, params: Tensor, bound: float) -> tuple[Tensor, ...]:
        """z, log_det, and what the gradient needs: exp(-s) and 1 + |raw| / bound."""
        shift, raw = params.split(x.shape[1], dim=1)
        denominator = raw.abs().div_(bound).add_(1)
        log_scale = torch.div(raw, denominator)
        log_det = log_scale.sum(dim=1).neg_()
        inv_scale = log_scale.neg_().exp_()  # in place: log_scale is not needed again
        z = torch.sub(x, shift).mul_(inv_scale)
        return z, log_det, inv_scale, denominator

    @staticmethod
    def forward(ctx, x: Tensor, params: Tensor, bound: float) -> tuple[Tensor, Tensor]:
        z, log_det, inv_scale, denominator = _AffineToNoise.evaluate(x, params, bound)
        ctx.save_for_backward(inv_scale, z, denominator)
        return z, log_det

    @staticmethod
    def backward(ctx, grad_z: Tensor, grad_log_det: Tensor) -> tuple[Tensor | None, ...]:
        inv_scale, z, denominator = ctx.saved_tensors
        dim = z.shape[1]
        grad_x = grad_z * inv_scale
        grad_params = None
        if ctx.needs_input_grad[1]:
            grad_params = z.new_empty(z.shape[0], 2 * dim)
            torch.neg(grad_x, out=grad_params[:, :dim])
            grad_s = torch.mul(grad_z, z, out=grad_params[:, dim:])
            grad_s.add_(grad_log_det[:, None]).neg_().div_(denominator).div_(denominator)
        return (grad_x if ctx.needs_input_grad[0] else None), grad_params, None


class MaskedAffineAutoregressive(Transform):
    """The MAF layer: an affine map whose shift and scale come from a MADE.

    Data to noise (parallel, one MADE pass)::

        z_i = (x_i - mu_i(x_<i)) * exp(-s_i(x_<i)),   log|det dz/dx| = -sum_i s_i

    Noise to data (sequential, ``dim`` MADE passes): ``x_i = mu_i + exp(s_i) * z_i`` in the
    layer's order, each pass fixing one more variable.

    Args:
        dim: number of variables D.
        hidden: MADE hidden widths.
        context_dim: context size, 0 if unconditional.
        order: the layer's autoregressive order (None: natural).
        scale_bound: the log-scale is soft-clamped to ``(-scale_bound, scale_bound)``.
        activation: hidden non-linearity of the MADE.

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
        scale_bound: float = 5.0,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be > 0, got {scale_bound}")
        self.made = MADE(dim, hidden, 2, context_dim, order, activation)
        self.dim = dim
        self.scale_bound = float(scale_bound)
        # Start every layer at the identity map, which keeps deep stacks stable early on.
        last = self.made.rest[-1]
        nn.init.zeros_(last.bias)
        last.weight.data.mul_(1e-2)

    @property
    def order(self) -> Tensor:
        """(dim,) the layer's autoregressive order."""
        return self.made.order

    def shift_and_log_scale(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """MADE pass: x (batch, dim) -> shift (batch, dim), log-scale (batch, dim).

        The reference form of the layer's parameters. :meth:`forward` and :meth:`inverse`
        compute the same numbers inline (with fewer temporaries), so overriding this method
        does not change them.
        """
        params = self.made.raw_forward(x, context)
        return params[..., 0], soft_clamp(params[..., 1], self.scale_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if records_small_batch(x):
            # Training on a small batch: autograd's own graph is cheaper here (see made.py).
            params = self.made.raw_forward(x, context)
            shift, log_scale = params[..., 0], soft_clamp(params[..., 1], self.scale_bound)
            z = torch.sub(x, shift).mul_(torch.neg(log_scale).exp_())
            return z, log_scale.sum(dim=1).neg_()
        params = self.made.blocked_forward(x, context)
        if torch.is_grad_enabled() and (x.requires_grad or params.requires_grad):
            return _AffineToNoise.apply(x, params, self.scale_bound)
        return _AffineToNoise.evaluate(x, params, self.scale_bound)[:2]

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # One variable per step, each hidden unit computed once (MADE.sequential): the same
        # result as the D full MADE passes of _inverse_loop at about the cost of one.
        z_rows = z.t()[self.made.order]  # (dim, batch), row k: variable order[k]
        log_scales = []

        def step(k: int, params: Tensor) -> Tensor:
            log_scale = soft_clamp(params[1], self.scale_bound)
            log_scales.append(log_scale)
            return params[0] + torch.exp(log_scale) * z_rows[k]

        x_rows = self.made.sequential(step, z.shape[0], context, like=z)
        x = x_rows.t()[:, self.made.degrees_in - 1]
        return x, torch.stack(log_scales).sum(dim=0)

    def _inverse_loop(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The plain inverse, ``dim`` full MADE passes; the reference :meth:`inverse` matches."""
        x = torch.zeros_like(z)
        # After pass k the first k variables of the order are exact; pass D fixes all.
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
