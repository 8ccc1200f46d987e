"""Flows: a base density pushed through a stack of transforms (MAF, IAF)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_context, check_points, check_positive_int
from .distributions import MixtureOfGaussians, StandardNormal, check_base
from .masks import check_order
from .transforms import (
    DEFAULT_SCALE_BOUND,
    BatchNorm,
    Inverted,
    MaskedAffineAutoregressive,
    Transform,
)

__all__ = ["Flow", "MAF", "IAF", "layer_orders", "maf_layers"]


def layer_orders(dim: int, n_layers: int, order: str | Sequence) -> list[Tensor]:
    """The autoregressive order of each layer.

    Args:
        dim: number of variables D.
        n_layers: number of autoregressive layers.
        order: ``"reversed"`` (natural, reversed, natural, ...: the MAF paper's choice),
            ``"natural"`` (the same order in every layer), ``"random"`` (a fresh random
            permutation per layer, from torch's global generator), or a list of
            ``n_layers`` permutations.

    Returns:
        list of n_layers (dim,) long tensors.
    """
    natural = torch.arange(dim)
    if order == "reversed":
        return [natural if i % 2 == 0 else natural.flip(0) for i in range(n_layers)]
    if order == "natural":
        return [natural] * n_layers
    if order == "random":
        return [torch.randperm(dim) for _ in range(n_layers)]
    if isinstance(order, str) or not isinstance(order, Sequence) or len(order) != n_layers:
        raise ValueError(
            "order must be 'reversed', 'natural', 'random' or a list of "
            f"{n_layers} permutations, got {order!r}"
        )
    return [check_order(o, dim) for o in order]


class Flow(nn.Module):
    """A normalising flow: ``log p(x) = log p_base(z) + log|det dz/dx|`` with ``z = T(x)``.

    ``transforms`` are applied in order from data to noise.

    Args:
        transforms: the layers, data to noise.
        base: the base density on R^dim (``log_prob``, ``sample``). A base with a
            ``context_dim > 0`` attribute (a conditional :class:`mafkit.MADEMoG`, say) is
            conditional: it receives the context as the layers do, ``base.log_prob(z,
            context)`` and ``base.sample(n, context)``.
        dim: number of variables D.
        context_dim: size of the context the user passes; 0 if unconditional.
        embedding: optional network applied to the context once, before the layers; the
            layers then receive its output.
    """

    def __init__(
        self,
        transforms: Sequence[Transform],
        base: nn.Module,
        dim: int,
        context_dim: int = 0,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.context_dim = check_positive_int(context_dim, "context_dim", minimum=0)
        if embedding is not None and context_dim == 0:
            raise ValueError("an embedding needs a context: set context_dim > 0")
        self.transforms = nn.ModuleList(transforms)
        self.base = check_base(base, dim)
        self.embedding = embedding
        if self._conditional_base and context_dim == 0:
            raise ValueError("the base density is conditional: the flow needs context_dim > 0")

    @property
    def _conditional_base(self) -> bool:
        return getattr(self.base, "context_dim", 0) > 0

    def _base_log_prob(self, z: Tensor, context: Tensor | None) -> Tensor:
        """log p_base(z), given the (embedded) context if the base is conditional."""
        return self.base.log_prob(z, context) if self._conditional_base else self.base.log_prob(z)

    def _base_sample(self, n: int, context: Tensor | None) -> Tensor:
        """n draws from the base, given the (embedded) context if the base is conditional."""
        return self.base.sample(n, context) if self._conditional_base else self.base.sample(n)

    def _embed(self, context: Tensor | None, batch: int | None) -> Tensor | None:
        context = check_context(context, self.context_dim, batch)
        if context is not None and self.embedding is not None:
            context = self.embedding(context)
        return context

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise.

        Args:
            x: (batch, dim) points in data space.
            context: (batch, context_dim), required if and only if the flow is conditional.

        Returns:
            z (batch, dim) and log|det dz/dx| (batch,).
        """
        check_points(x, self.dim)
        return self._forward(x, self._embed(context, x.shape[0]))

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, ld = transform(x, context)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data.

        Args:
            z: (batch, dim) points in noise space.
            context: (batch, context_dim), required if and only if the flow is conditional.

        Returns:
            x (batch, dim) and log|det dx/dz| (batch,).
        """
        check_points(z, self.dim, "z")
        return self._inverse(z, self._embed(context, z.shape[0]))

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        log_det = z.new_zeros(z.shape[0])
        for transform in reversed(self.transforms):
            z, ld = transform.inverse(z, context)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x | context): x (batch, dim) -> (batch,)."""
        z, log_det = self.forward(x, context)
        if self._conditional_base:
            context = self._embed(context, x.shape[0])
        return self._base_log_prob(z, context) + log_det

    def _sample_context(self, n: int, context: Tensor | None) -> Tensor | None:
        if self.context_dim and isinstance(context, Tensor) and context.dim() == 1:
            if context.shape[0] != self.context_dim:
                raise ValueError(
                    f"context must have shape ({self.context_dim},) or ({n}, "
                    f"{self.context_dim}), got {tuple(context.shape)}"
                )
            context = context.expand(n, -1)
        return self._embed(context, n)

    def sample_and_log_prob(self, n: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Draw n points and their log-density in one noise-to-data pass.

        Args:
            n: number of points.
            context: (context_dim,) shared by all points, or (n, context_dim) one per point;
                required if and only if the flow is conditional.

        Returns:
            x (n, dim) and log p(x | context) (n,). Differentiable with respect to the
            parameters of the layers (the reparametrisation trick) when the base draws
            ``N(0, I)`` noise; a mixture base picks components, which is not differentiable.
        """
        check_positive_int(n, "n")
        context = self._sample_context(n, context)
        z = self._base_sample(n, context)
        x, log_det = self._inverse(z, context)
        return x, self._base_log_prob(z, context) - log_det

    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """Draw n points: (n, dim). ``context`` as in :meth:`sample_and_log_prob`.

        Runs with autograd as any other call does (wrap it in ``torch.no_grad()`` when no
        gradient is needed): samples of a flow with a standard normal base are
        differentiable with respect to its parameters.
        """
        check_positive_int(n, "n")
        context = self._sample_context(n, context)
        x, _ = self._inverse(self._base_sample(n, context), context)
        return x

    @torch.no_grad()
    def set_batch_norm_statistics(self, x: Tensor, context: Tensor | None = None) -> None:
        """Give every :class:`BatchNorm` layer the statistics of its inputs over ``x``.

        Leaves the flow in evaluation mode, the mode that uses these statistics.

        Args:
            x: (n, dim) the whole training set, in data space.
            context: (n, context_dim) its contexts, if the flow is conditional.
        """
        check_points(x, self.dim)
        context = self._embed(context, x.shape[0])
        # Evaluation mode is where stored statistics are used; in training mode the next
        # batch would replace them. So the flow stays in evaluation mode afterwards.
        self.eval()
        for transform in self.transforms:
            if isinstance(transform, BatchNorm):
                transform.set_statistics(x)
            x, _ = transform(x, context)


def _make_base(base: str | nn.Module, dim: int, n_components: int) -> nn.Module:
    """``"normal"`` -> StandardNormal, ``"mog"`` -> MixtureOfGaussians, a module as given."""
    if base == "normal":
        return StandardNormal(dim)
    if base == "mog":
        return MixtureOfGaussians(dim, n_components)
    if isinstance(base, str):
        raise ValueError(f"base must be 'normal', 'mog' or a module, got {base!r}")
    return base


def _embedded_size(embedding: nn.Module | None, context_dim: int) -> int:
    """The context size the layers see: the embedding's output size, or ``context_dim``."""
    if embedding is None or context_dim == 0:
        return context_dim
    # Probe with the embedding's own dtype and device, so a float64 or GPU network works too.
    param = next(embedding.parameters(), None)
    like = {} if param is None else {"dtype": param.dtype, "device": param.device}
    with torch.no_grad():
        out = embedding(torch.zeros(2, context_dim, **like))
    if out.dim() != 2:
        raise ValueError(
            f"embedding must map (batch, {context_dim}) to (batch, k), got " f"{tuple(out.shape)}"
        )
    return out.shape[1]


class MAF(Flow):
    """Masked Autoregressive Flow: MADE layers used as transforms from data to noise.

    Density evaluation is one parallel MADE pass per layer; sampling is sequential: ``dim``
    steps per layer, one after another, which together compute each hidden unit once
    (:mod:`mafkit.incremental`).

    Args:
        dim: number of variables D.
        n_layers: number of MADE layers.
        hidden: MADE hidden widths.
        context_dim: context size, 0 if unconditional.
        batch_norm: put a :class:`BatchNorm` layer (with its log-det) between MADE layers.
        base: ``"normal"``, ``"mog"`` (a mixture of Gaussians with fixed weights, means
            and scales: "a MAF with a MoG base", not the paper's MAF MoG, which is
            :class:`mafkit.MAFMoG`) or a density module.
        n_components: mixture components when ``base="mog"``.
        order: ``"reversed"``, ``"natural"``, ``"random"`` or a list of permutations
            (see :func:`layer_orders`).
        scale_bound: soft bound of each layer's log-scale.
        activation: MADE hidden non-linearity.
        embedding: optional context network (see :class:`Flow`).

    Example:
        >>> flow = MAF(2, n_layers=3, hidden=(16,))
        >>> flow.log_prob(torch.randn(4, 2)).shape, flow.sample(5).shape
        (torch.Size([4]), torch.Size([5, 2]))

    References:
        Papamakarios, Pavlakou and Murray (2017). Masked Autoregressive Flow for Density
        Estimation. arXiv:1705.07057. Explained in chapter 2.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int = 5,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        batch_norm: bool = False,
        base: str | nn.Module = "normal",
        n_components: int = 10,
        order: str | Sequence = "reversed",
        scale_bound: float = DEFAULT_SCALE_BOUND,
        activation: type[nn.Module] = nn.ReLU,
        embedding: nn.Module | None = None,
    ) -> None:
        check_positive_int(dim, "dim")
        check_positive_int(n_layers, "n_layers")
        check_positive_int(context_dim, "context_dim", minimum=0)
        layer_context = _embedded_size(embedding, context_dim)
        orders = layer_orders(dim, n_layers, order)
        transforms = maf_layers(
            dim, orders, hidden, layer_context, batch_norm, scale_bound, activation
        )
        super().__init__(
            transforms, _make_base(base, dim, n_components), dim, context_dim, embedding
        )


def maf_layers(
    dim: int,
    orders: Sequence[Tensor],
    hidden: Sequence[int] | int,
    context_dim: int,
    batch_norm: bool,
    scale_bound: float,
    activation: type[nn.Module],
) -> list[Transform]:
    """MAF layers in the given orders, data to noise, with batch norm between them if asked."""
    transforms: list[Transform] = []
    for i, layer_order in enumerate(orders):
        if batch_norm and i > 0:
            transforms.append(BatchNorm(dim))
        transforms.append(
            MaskedAffineAutoregressive(
                dim, hidden, context_dim, layer_order, scale_bound, activation
            )
        )
    return transforms


class IAF(Flow):
    """Inverse Autoregressive Flow: the MAF layer run the other way round.

    Each layer's parallel pass goes from noise to data, so sampling (and the density of
    the flow's own samples, :meth:`sample_and_log_prob`) is one pass per layer, while the
    density of external data needs the sequential inverse (``dim`` steps per layer, see
    :mod:`mafkit.incremental`).

    Args: as for :class:`MAF` (no batch norm).

    References:
        Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling (2016). Improving
        Variational Inference with Inverse Autoregressive Flow. arXiv:1606.04934.
        Explained in chapter 3.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int = 5,
        hidden: Sequence[int] | int = (64, 64),
        context_dim: int = 0,
        base: str | nn.Module = "normal",
        n_components: int = 10,
        order: str | Sequence = "reversed",
        scale_bound: float = DEFAULT_SCALE_BOUND,
        activation: type[nn.Module] = nn.ReLU,
        embedding: nn.Module | None = None,
    ) -> None:
        check_positive_int(dim, "dim")
        check_positive_int(n_layers, "n_layers")
        check_positive_int(context_dim, "context_dim", minimum=0)
        layer_context = _embedded_size(embedding, context_dim)
        transforms = [
            Inverted(
                MaskedAffineAutoregressive(
                    dim, hidden, layer_context, layer_order, scale_bound, activation
                )
            )
            for layer_order in layer_orders(dim, n_layers, order)
        ]
        super().__init__(
            transforms, _make_base(base, dim, n_components), dim, context_dim, embedding
        )

    @classmethod
    def from_maf(cls, maf: Flow) -> IAF:
        """The dual of a MAF: an IAF that shares its layers, weights and base.

        The IAF's noise-to-data pass is the MAF's data-to-noise pass and vice versa:
        ``iaf.inverse(u) == maf.forward(u)`` and ``iaf.forward(x) == maf.inverse(x)``.
        It is the flow that moves the base density through the MAF's parallel map.

        Raises:
            ValueError: if the flow has :class:`BatchNorm` layers (an IAF has none).
        """
        if not isinstance(maf, Flow):
            raise TypeError(f"maf must be a mafkit Flow, got {type(maf).__name__}")
        if any(isinstance(t, BatchNorm) for t in maf.transforms):
            raise ValueError(
                "IAF.from_maf needs a flow without BatchNorm layers: in training mode batch "
                "norm would normalise the IAF's noise batches with their own statistics and "
                "move the shared running averages, so sampling and log_prob would disagree; "
                "build the MAF with batch_norm=False"
            )
        iaf = cls.__new__(cls)
        Flow.__init__(
            iaf,
            [Inverted(t) for t in reversed(maf.transforms)],
            maf.base,
            maf.dim,
            maf.context_dim,
            maf.embedding,
        )
        return iaf
