"""MADE: a masked multilayer perceptron whose outputs are autoregressive in its inputs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from ._validation import check_context, check_hidden, check_points, check_positive_int
from .masks import check_order, hidden_degrees, hidden_mask, input_degrees, output_mask

__all__ = ["MaskedLinear", "MADE"]


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask.

    Args:
        mask: (out_features, in_features) zeros and ones; stored as a buffer, so it moves
            with ``.to(device)`` and is saved in the ``state_dict``.
        bias: whether to add a bias.

    Example:
        >>> import torch
        >>> layer = MaskedLinear(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> layer(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, in_features) -> (batch, out_features)."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015).

    Output ``params[:, i, :]`` depends only on the variables that come before variable
    ``i`` in ``order`` (and on the context, if any). Degrees are 1-based: input i has degree
    ``position of i in order + 1``; hidden units cycle through ``1..dim-1``; a hidden mask
    connects where ``d_out >= d_in`` and the output mask where ``d_out > d_in``.

    The network is ``layers``, one ``nn.Sequential`` whose parts are named by their role::

        input         MaskedLinear  x (dim) -> first hidden layer
        activation_1  the non-linearity
        hidden_1      MaskedLinear  first -> second hidden layer (one per extra layer)
        activation_2  ...
        output        MaskedLinear  last hidden layer -> dim * n_params

    The context enters unmasked: ``context_layer`` (a plain ``nn.Linear`` without bias, the
    matrix V of the paper) adds ``V c`` to the output of ``input``, so every unit of the
    first hidden layer sees all of it. With a context, hidden degrees start at 0; degree-0
    units see the context only and are the path by which the first variable's conditional
    depends on it.

    Args:
        dim: number of variables D >= 1.
        hidden: widths of the hidden layers, e.g. ``(64, 64)``.
        n_params: parameters per variable (2 for a shift and a log-scale).
        context_dim: size of the context vector; 0 for an unconditional MADE.
        order: permutation of ``0..dim-1`` (``order[k]`` is the k-th variable modelled);
            None for the natural order.
        activation: the hidden non-linearity (a module class, instantiated per layer).

    Example:
        >>> import torch
        >>> made = MADE(3, hidden=(16,), n_params=2)
        >>> made(torch.randn(10, 3)).shape
        torch.Size([10, 3, 2])
        >>> [name for name, _ in made.layers.named_children()]
        ['input', 'activation_1', 'output']

    References:
        Germain, Gregor, Murray and Larochelle (2015). MADE: Masked Autoencoder for
        Distribution Estimation. arXiv:1502.03509. Explained in chapter 1.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] | int = (64, 64),
        n_params: int = 2,
        context_dim: int = 0,
        order: Sequence[int] | Tensor | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.hidden = check_hidden(hidden)
        self.n_params = check_positive_int(n_params, "n_params")
        self.context_dim = check_positive_int(context_dim, "context_dim", minimum=0)
        self.register_buffer("order", check_order(order, self.dim))

        lowest = 0 if self.context_dim > 0 else 1
        degrees = [input_degrees(self.order)]
        degrees += [hidden_degrees(width, self.dim, lowest) for width in self.hidden]
        self.register_buffer("degrees_in", degrees[0])
        # Interleaved layout: output unit k parametrises variable k // n_params.
        out_degrees = degrees[0].repeat_interleave(self.n_params)

        names = ["input", *(f"hidden_{i}" for i in range(1, len(self.hidden)))]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (name, d_in, d_out) in enumerate(zip(names, degrees[:-1], degrees[1:])):
            layers[name] = MaskedLinear(hidden_mask(d_out, d_in))
            layers[f"activation_{i + 1}"] = activation()
        layers["output"] = MaskedLinear(output_mask(out_degrees, degrees[-1]))
        self.layers = nn.Sequential(layers)
        if self.context_dim:
            self.context_layer = nn.Linear(self.context_dim, self.hidden[0], bias=False)

    @property
    def input_layer(self) -> MaskedLinear:
        """The masked layer that reads x; it runs once per full pass of the network."""
        return self.layers.input

    @property
    def output_layer(self) -> MaskedLinear:
        """The masked layer that produces the parameters (interleaved, see :meth:`forward`)."""
        return self.layers.output

    def masks(self) -> list[Tensor]:
        """The masks of the layers, input to output, each (n_out, n_in)."""
        return [m.mask for m in self.layers if isinstance(m, MaskedLinear)]

    def connectivity(self) -> Tensor:
        """Which inputs each output can reach, from the product of the masks.

        Returns:
            (dim, dim) bool tensor; entry [i, j] is True when variable i's parameters can
            depend on variable j.
        """
        reach = None
        for mask in self.masks():
            reach = mask if reach is None else (mask @ reach).clamp(max=1)
        per_output = reach.view(self.dim, self.n_params, self.dim)
        return per_output.amax(dim=1) > 0

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Compute every conditional's parameters in one pass.

        Args:
            x: (batch, dim) points.
            context: (batch, context_dim), required if and only if ``context_dim > 0``.

        Returns:
            (batch, dim, n_params), contiguous; ``params[:, i]`` depends only on x's
            predecessors of i (and on the context).
        """
        check_points(x, self.dim)
        check_context(context, self.context_dim, x.shape[0])
        return self.raw_forward(x, context)

    def raw_forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """:meth:`forward` without argument checks, for callers that checked already."""
        h = self.layers.input(x)
        if context is not None:
            h = h + self.context_layer(context)
        for layer in list(self.layers)[1:]:
            h = layer(h)
        return h.view(x.shape[0], self.dim, self.n_params)
