"""MADE: a masked multilayer perceptron whose outputs are autoregressive in its inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ._validation import check_context, check_hidden, check_points, check_positive_int
from .masks import check_order, hidden_degrees, hidden_mask, input_degrees, output_mask

__all__ = ["MaskedLinear", "MADE"]


@functools.cache
def _fused_linear_relu_available() -> bool:
    """Whether this PyTorch build has oneDNN's fused linear + ReLU for CPU tensors."""
    try:
        one = torch.ones(2, 2)
        torch.ops.mkldnn._linear_pointwise(one, one, one[0], "relu", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


# Below about 2^23 multiply-adds per layer (e.g. 512 points through 128 x 128 weights)
# oneDNN's per-call overhead outweighs its fused bias and ReLU (measured on AVX-512, 1 thread).
_FUSED_MIN_MULTIPLY_ADDS = 2**23


# A hand-written gradient saves autograd's per-operation work on large batches, but its
# Python backward costs ~40 us per call: training on 1024 points through 128 x 128 layers
# gains ~4 %, on 512 points it loses ~2 %, on 128 points ~20 %. Smaller batches stay with
# autograd's own graph.
HAND_GRADIENT_MIN_BATCH = 1024


def _fused_available(x: Tensor) -> bool:
    """Whether oneDNN's fused linear layers can take ``x`` (float32 on the CPU).

    Not under ``torch.compile``: its code generator cannot lower the oneDNN call, and it
    fuses bias and ReLU itself.
    """
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and _fused_linear_relu_available()
    )


class _LinearStack(torch.autograd.Function):
    """Linear layers with a ReLU after each but the last, with a hand-written gradient.

    ``apply(h, w_1, b_1, ..., w_n, b_n)`` computes ``relu(h w_1^T + b_1)``, ..., then
    ``h w_n^T + b_n``. For float32 on the CPU each layer is one call to oneDNN's fused
    linear, which adds the bias and applies the ReLU while the product is still in cache;
    otherwise ``addmm`` and an in-place ReLU. The gradient is written out by hand: a ReLU
    passes it where its output is positive, and each weight's gradient is computed in the
    orientation that is fast for its shape (autograd's choice is several times slower for
    a layer fed by a few inputs, such as the first layer of a MADE on two variables).
    """

    @staticmethod
    def evaluate(h: Tensor, layers: Sequence[Tensor], inputs: list | None = None) -> Tensor:
        """The forward computation; appends each layer's input to ``inputs`` if given.

        Without ``inputs`` (no gradient wanted) every activation is freed as soon as the
        next layer has read it, which keeps the working set and the page faults small.
        """
        weights, biases = layers[0::2], layers[1::2]
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            if inputs is not None:
                inputs.append(h)
            relu = i < len(weights) - 1
            # oneDNN costs ~15 us more per call than addmm and wins only on large products.
            large = h.shape[0] * weight.numel() >= _FUSED_MIN_MULTIPLY_ADDS
            if large and _fused_available(h):
                post_op = "relu" if relu else "none"
                h = torch.ops.mkldnn._linear_pointwise(h, weight, bias, post_op, [], "")
            else:
                h = torch.addmm(bias, h, weight.t())
                h = h.relu_() if relu else h
        return h

    @staticmethod
    def forward(ctx, h: Tensor, *layers: Tensor) -> Tensor:
        inputs: list[Tensor] = []
        out = _LinearStack.evaluate(h, layers, inputs)
        ctx.save_for_backward(*inputs, *layers[0::2])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        n = len(saved) // 2
        inputs, weights = saved[:n], saved[n:]
        needs = ctx.needs_input_grad
        grads: list[Tensor | None] = [None] * (2 * n)
        for i in reversed(range(n)):
            if needs[1 + 2 * i]:
                # (out, in) either way; the product with the shorter side as rows is fast.
                if grad.shape[1] <= inputs[i].shape[1]:
                    grads[2 * i] = grad.t().mm(inputs[i])
                else:
                    grads[2 * i] = inputs[i].t().mm(grad).t()
            if needs[2 + 2 * i]:
                grads[2 * i + 1] = grad.sum(dim=0)
            if i == 0 and not needs[0]:
                return None, *grads
            grad = grad.mm(weights[i])
            if i > 0:  # inputs[i] is a ReLU output: the gradient passes where it is > 0
                grad = torch.ops.aten.threshold_backward(grad, inputs[i], 0)
        return grad, *grads


def linear_stack(h: Tensor, layers: Sequence[Tensor]) -> Tensor:
    """``h`` through linear layers ``(w_1, b_1, ..., w_n, b_n)`` with ReLUs between them.

    Args:
        h: (batch, in_features).
        layers: weights (out, in) and biases (out,), alternating, first layer first.

    Returns:
        (batch, out_features of the last layer).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (h, *layers)):
        return _LinearStack.apply(h, *layers)
    return _LinearStack.evaluate(h, layers)


def records_small_batch(x: Tensor) -> bool:
    """Whether autograd records and the batch is below :data:`HAND_GRADIENT_MIN_BATCH`.

    Such calls keep to plain operations that autograd differentiates: there the Python
    cost of the hand-written gradients and of the blocked output outweighs what they save.
    """
    return torch.is_grad_enabled() and x.shape[0] < HAND_GRADIENT_MIN_BATCH


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask.

    Args:
        mask: (out_features, in_features) zeros and ones; stored as a buffer.
        bias: whether to add a bias.
    """

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, in_features) -> (batch, out_features)."""
        if self.bias is None or records_small_batch(x):
            return nn.functional.linear(x, self.masked_weight(), self.bias)
        return linear_stack(x, (self.masked_weight(), self.bias))

    def masked_weight(self) -> Tensor:
        """The weight with its mask applied: (out_features, in_features)."""
        return self.weight * self.mask


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015).

    Output ``params[:, i, :]`` depends only on the variables that come before variable
    ``i`` in ``order`` (and on the context, if any). Degrees are 1-based: input i has degree
    ``position of i in order + 1``; hidden units cycle through ``1..dim-1``; a hidden mask
    connects where ``d_out >= d_in`` and the output mask where ``d_out > d_in``.

    The context enters unmasked: every unit of the first hidden layer sees all of it. With
    a context, hidden degrees start at 0; degree-0 units see the context only and are the
    path by which the first variable's conditional depends on the context.

    Args:
        dim: number of variables D >= 1.
        hidden: widths of the hidden layers, e.g. ``(64, 64)``.
        n_params: parameters per variable (2 for a shift and a log-scale).
        context_dim: size of the context vector; 0 for an unconditional MADE.
        order: permutation of ``0..dim-1`` (``order[k]`` is the k-th variable modelled);
            None for the natural order.
        activation: the hidden non-linearity (a module class, instantiated per layer).

    Example:
        >>> made = MADE(3, hidden=(16,), n_params=2)
        >>> made(torch.randn(10, 3)).shape
        torch.Size([10, 3, 2])

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
        # Interleaved layout: output unit k parametrises variable k // n_params.
        out_degrees = degrees[0].repeat_interleave(self.n_params)
        self.register_buffer("degrees_in", degrees[0])
        # Output unit order for blocked_forward: parameter p of variable i at p * dim + i.
        blocked = torch.arange(self.dim * self.n_params).view(self.dim, self.n_params)
        self.register_buffer("blocked_rows", blocked.t().reshape(-1), persistent=False)

        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:]):
            layers += [MaskedLinear(hidden_mask(d_out, d_in)), activation()]
        layers.append(MaskedLinear(output_mask(out_degrees, degrees[-1])))
        self.first = layers[0]
        self.rest = nn.Sequential(*layers[1:])
        if self.context_dim:
            self.context_layer = nn.Linear(self.context_dim, self.hidden[0], bias=False)
        # Plain ReLU networks run their layers after the first as one linear_stack.
        self.relu_only = all(
            type(m) is nn.ReLU for m in self.rest if not isinstance(m, MaskedLinear)
        )

    def masks(self) -> list[Tensor]:
        """The masks of the layers, input to output, each (n_out, n_in)."""
        return [m.mask for m in self.modules() if isinstance(m, MaskedLinear)]

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
            (batch, dim, n_params); ``params[:, i]`` depends only on x's predecessors of i.
        """
        check_points(x, self.dim)
        check_context(context, self.context_dim, x.shape[0])
        return self.raw_forward(x, context)

    def raw_forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``forward`` without argument checks, for callers that checked already."""
        batch = x.shape[0]
        if records_small_batch(x):
            # Under autograd on a small batch, gathering the output rows costs more than
            # the blocked layout saves: evaluate the output layer as it is stored.
            last = self.rest[-1]
            out = self._forward(x, context, (last.masked_weight(), last.bias))
            return out.view(batch, self.dim, self.n_params)
        params = self.blocked_forward(x, context)
        return params.view(batch, self.n_params, self.dim).transpose(1, 2)

    def blocked_forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The parameters in blocked layout, without argument checks.

        The output layer is stored interleaved (unit k: variable k // n_params, parameter
        k % n_params) but evaluated blocked, so that each parameter is a dense slice: the
        element-wise work of a flow layer then runs on contiguous rows (about 3x faster than
        on stride-n_params data) and its gradient comes back as one concatenation rather
        than a zero-filled tensor per parameter. Only the order of the output units
        changes, so every value is the same as in :meth:`forward`.

        Args:
            x: (batch, dim) points.
            context: (batch, context_dim) or None.

        Returns:
            (batch, n_params * dim); columns ``p * dim`` to ``(p + 1) * dim`` hold parameter
            p of every variable, so ``params.split(dim, dim=1)`` gives one (batch, dim)
            tensor per parameter.
        """
        return self._forward(x, context, self._blocked_output())

    def _forward(self, x: Tensor, context: Tensor | None, output: tuple[Tensor, Tensor]) -> Tensor:
        """The network, with ``output`` = (weight, bias) as the last layer."""
        h = self.first(x)
        if context is not None:
            h = h + self.context_layer(context)
        small = records_small_batch(x)
        if self.relu_only and not small:
            # The first layer stays a module call, so forward hooks on made.first see
            # every pass; the layers after it run as one stack (ReLU in place: h is fresh).
            linears = [m for m in self.rest if isinstance(m, MaskedLinear)]
            hidden = [t for m in linears[:-1] for t in (m.masked_weight(), m.bias)]
            return linear_stack(h.relu_(), (*hidden, *output))
        *hidden_layers, _ = self.rest
        for layer in hidden_layers:
            # ReLU in place on the fresh output of the layer before: the same numbers and
            # the same gradient, one (batch, width) allocation less per hidden layer.
            h = h.relu_() if type(layer) is nn.ReLU else layer(h)
        return nn.functional.linear(h, *output) if small else linear_stack(h, output)

    def _blocked_output(self) -> tuple[Tensor, Tensor]:
        """The output layer's masked weight and bias, rows in blocked order."""
        last = self.rest[-1]
        if self.n_params == 1:
            return last.masked_weight(), last.bias
        rows = self.blocked_rows
        return last.masked_weight().index_select(0, rows), last.bias.index_select(0, rows)

    def _sorted_layers(self, context: Tensor | None) -> tuple[list, list, list, Tensor, Tensor]:
        """The masked weights with inputs and hidden units sorted by degree.

        A hidden unit's degree here is the highest input degree it depends on (0: none, the
        context only), read off the mask buffers so that it always agrees with the weights.
        Sorted this way, every masked weight is block lower-triangular: the units of degree
        k read only a prefix of the layer below (the inputs: the first k variables).

        Returns:
            weights: per hidden layer (width, n_below), rows and columns sorted.
            biases: per hidden layer (width, 1); the first (width, batch) with a context.
            cuts: per hidden layer, ``cuts[k]`` = the number of units of degree < k, k=0..dim.
            out_weight: (dim, n_params, width_last): [k] is variable order[k]'s output rows.
            out_bias: (dim, n_params, 1), sorted likewise.
        """
        linears = [self.first, *(m for m in self.rest if isinstance(m, MaskedLinear))]
        degree = torch.arange(1, self.dim + 1, device=self.order.device)
        columns = self.order  # the inputs sorted by degree
        weights, biases, cuts = [], [], []
        for layer in linears[:-1]:
            mask = layer.mask[:, columns]
            unit_degree = (mask * degree).amax(dim=1).long()
            units = torch.argsort(unit_degree, stable=True)
            weights.append(layer.weight[units][:, columns] * mask[units])
            biases.append(layer.bias[units, None])
            counts = torch.bincount(unit_degree, minlength=self.dim + 1)
            cuts.append([0, *counts.cumsum(0)[: self.dim].tolist()])
            if context is not None and len(biases) == 1:
                biases[0] = biases[0] + self.context_layer.weight[units] @ context.t()
            degree, columns = unit_degree[units], units
        out = linears[-1]
        out_weight = (out.weight * out.mask)[:, columns].view(self.dim, self.n_params, -1)
        out_bias = out.bias.view(self.dim, self.n_params, 1)
        return weights, biases, cuts, out_weight[self.order], out_bias[self.order]

    def _activate_(self, block: Tensor, activation: nn.Module) -> None:
        """Apply ``activation`` to ``block`` in place."""
        if type(activation) is nn.ReLU:
            block.relu_()
        else:
            block.copy_(activation(block))

    def sequential(
        self,
        step: Callable[[int, Tensor], Tensor],
        batch: int,
        context: Tensor | None = None,
        like: Tensor | None = None,
    ) -> Tensor:
        """Run the ``dim`` autoregressive steps, computing every hidden unit exactly once.

        Step ``k`` (0-based) produces variable ``order[k]``: its parameters are computed
        from the variables already produced, and ``step(k, params)`` returns its value.
        This gives what ``dim`` full passes of :meth:`raw_forward` give (each pass fixing one
        more variable), for about the cost of one pass. A hidden unit depends only on the
        inputs up to its degree, so once those are known it is final: step ``k`` computes
        just the units whose inputs became complete with variable ``order[k - 1]`` (the
        units are visited sorted by degree, so each step reads a prefix of the layer
        below) and the ``n_params`` output units of ``order[k]``. The degrees are read off
        the mask buffers, so they always agree with the weights in use.

        Args:
            step: ``step(k, params)`` with params (n_params, batch) of variable ``order[k]``;
                returns that variable's values, (batch,).
            batch: number of points.
            context: (batch, context_dim), required if and only if ``context_dim > 0``.
            like: a tensor whose dtype and device the work buffers take (default: weights).

        Returns:
            (dim, batch): row k holds variable ``order[k]``.
        """
        activations = [m for m in self.rest if not isinstance(m, MaskedLinear)]
        like = self.first.weight if like is None else like
        # With autograd recording, grow each layer's state by concatenation; without, write
        # into preallocated buffers (in place, which autograd could not differentiate).
        track = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (like, context, *self.parameters())
        )
        weights, biases, cuts, out_weight, out_bias = self._sorted_layers(context)

        def new(rows: int) -> Tensor:
            return like.new_empty((0 if track else rows, batch))

        x = new(self.dim)
        hidden = [new(w.shape[0]) for w in weights]
        for k in range(self.dim):
            below = x[:k]  # the inputs of degree <= k
            for i, (weight, bias, cut, act) in enumerate(zip(weights, biases, cuts, activations)):
                start, stop = cut[k], cut[k + 1]  # the units of degree exactly k
                if stop > start:
                    w, b = weight[start:stop, : below.shape[0]], bias[start:stop]
                    if track:
                        hidden[i] = torch.cat((hidden[i], act(torch.addmm(b, w, below))))
                    else:
                        block = torch.addmm(b, w, below, out=hidden[i][start:stop])
                        self._activate_(block, act)
                below = hidden[i][:stop]
            params = torch.addmm(out_bias[k], out_weight[k, :, : below.shape[0]], below)
            value = step(k, params)
            if track:
                x = torch.cat((x, value[None]))
            else:
                x[k] = value
        return x
