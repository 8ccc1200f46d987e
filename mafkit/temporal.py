"""Temporal MAF: a recurrent encoder of the past conditions a MAF on every time step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import check_hidden, check_positive_int
from .flows import MAF
from .transforms import DEFAULT_SCALE_BOUND

__all__ = ["TemporalMAF"]

_State = Tensor | tuple[Tensor, Tensor]


class TemporalMAF(nn.Module):
    """A density over sequences: ``log p(x_1..x_T) = sum_t log p(x_t | h_{t-1})``.

    A recurrent encoder (GRU or LSTM) reads the past; its hidden state after
    ``x_1, ..., x_{t-1}`` is the context of a conditional :class:`MAF` for ``x_t``. One MAF
    (one set of weights) serves every step, so the model applies to any length T.

    **First step.** Before anything is observed the context is a *learned* initial state
    ``h_0`` (for an LSTM also a learned cell state ``c_0``); the encoder starts from it. So
    ``p(x_1)`` is a density learned like the others, not the density for an arbitrary
    all-zero context.

    **Training.** :meth:`log_prob` returns the *sum* over the T steps, one value per
    sequence, so ``mafkit.fit(model, data)`` with ``data`` of shape (n, T, dim) minimises the
    mean NLL per sequence; divide by T for the NLL per step. :meth:`step_log_prob` gives the
    (batch, T) terms. Density evaluation needs one recurrent pass of the encoder over the
    sequence (teacher forcing; sequential in time) and then one MAF pass over all
    batch x T steps at once. Because the loss is a sum over T steps, its gradient is about
    T times that of the per-step loss: ``fit``'s gradient clipping (norm 5 by default) acts
    on that sum, so it bites T times sooner than for a single step; scale ``clip_grad``
    with T to keep its per-step meaning.

    **Sampling** (:meth:`sample`, :meth:`forecast`) runs with autograd like
    :meth:`mafkit.Flow.sample`: the draws are differentiable with respect to the
    parameters (wrap the call in ``torch.no_grad()`` when no gradient is needed).

    Args:
        dim: number of variables per time step.
        hidden_size: size of the encoder state (the MAF's context size).
        n_layers: MAF layers per step.
        hidden: MADE hidden widths.
        cell: ``"gru"`` or ``"lstm"``.
        base: base density of the MAF (``"normal"``, ``"mog"`` or a module).
        n_components: mixture components when ``base="mog"``.
        order: MAF layer orders (see :func:`mafkit.layer_orders`).
        scale_bound: soft bound of each layer's log-scale.

    Attributes:
        encoder: the ``nn.GRU`` / ``nn.LSTM`` (batch_first) reading ``x_1..x_{T-1}``.
        flow: the conditional :class:`MAF` (``context_dim = hidden_size``).
        initial_hidden: (hidden_size,) learned ``h_0``; ``initial_cell`` likewise for LSTM.

    Example:
        >>> model = TemporalMAF(2, hidden_size=8, n_layers=2, hidden=(16,))
        >>> x = torch.randn(4, 10, 2)
        >>> model.log_prob(x).shape, model.step_log_prob(x).shape
        (torch.Size([4]), torch.Size([4, 10]))
        >>> model.sample(3, steps=5).shape, model.forecast(x, n_samples=7).shape
        (torch.Size([3, 5, 2]), torch.Size([7, 4, 2]))

    References:
        Rasul, Sheikh, Schuster, Bergmann and Vollgraf (2021). Multivariate Probabilistic
        Time Series Forecasting via Conditioned Normalizing Flows. arXiv:2002.06103.
        Explained in chapter 5.
    """

    def __init__(
        self,
        dim: int,
        hidden_size: int = 32,
        n_layers: int = 3,
        hidden: Sequence[int] | int = (32, 32),
        cell: str = "gru",
        base: str | nn.Module = "normal",
        n_components: int = 10,
        order: str | Sequence = "reversed",
        scale_bound: float = DEFAULT_SCALE_BOUND,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        check_hidden(hidden)
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.cell = cell
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.encoder = rnn(dim, hidden_size, batch_first=True)
        self.initial_hidden = nn.Parameter(torch.zeros(hidden_size))
        if cell == "lstm":
            self.initial_cell = nn.Parameter(torch.zeros(hidden_size))
        self.flow = MAF(
            dim,
            n_layers,
            hidden,
            context_dim=hidden_size,
            base=base,
            n_components=n_components,
            order=order,
            scale_bound=scale_bound,
        )

    # ------------------------------------------------------------------ checks

    def _check_sequence(self, x: object, name: str, allow_empty: bool = False) -> Tensor:
        """Check ``x`` is a finite (batch, T, dim) tensor on the model's device and dtype."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[2] != self.dim:
            raise ValueError(f"{name} must have shape (batch, T, {self.dim}), got {tuple(x.shape)}")
        if x.shape[1] == 0 and not allow_empty:
            raise ValueError(f"{name} must have at least one time step, got {tuple(x.shape)}")
        ref = self.initial_hidden
        if x.dtype != ref.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the model's parameters are {ref.dtype}; "
                f"convert one of them (e.g. {name}.to({ref.dtype}) or model.to({x.dtype}))"
            )
        if x.device != ref.device:
            raise ValueError(
                f"{name} is on {x.device} but the model is on {ref.device}; move one of them"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return x

    # ------------------------------------------------------------ the encoder

    def initial_state(self, batch: int) -> _State:
        """The encoder state before any observation, for ``batch`` sequences.

        Returns:
            GRU: h (1, batch, hidden_size); LSTM: (h, c), each (1, batch, hidden_size).
        """
        h = self.initial_hidden.expand(1, batch, self.hidden_size).contiguous()
        if self.cell == "gru":
            return h
        return h, self.initial_cell.expand(1, batch, self.hidden_size).contiguous()

    def context(self, state: _State) -> Tensor:
        """The MAF context of a state: its hidden vector, (batch, hidden_size)."""
        h = state if self.cell == "gru" else state[0]
        return h[0]

    def advance(self, state: _State, x: Tensor) -> _State:
        """Feed observations to the encoder.

        Args:
            state: as returned by :meth:`initial_state` or :meth:`advance`.
            x: (batch, t, dim) the next t observations (t >= 0), or (batch, dim) for one.

        Returns:
            the state after reading them.
        """
        if x.dim() == 2:
            x = x[:, None]
        if x.shape[1] == 0:
            return state
        _, state = self.encoder(x, state)
        return state

    def contexts(self, x_seq: Tensor) -> Tensor:
        """The context of every step of ``x_seq`` (batch, T, dim): (batch, T, hidden_size).

        Entry t is the encoder state after ``x_1..x_{t}`` (0-based: after ``x[:, :t]``), so
        entry 0 is the learned initial state and ``x[:, t]`` itself is never seen.
        """
        batch = x_seq.shape[0]
        first = self.initial_hidden.expand(batch, 1, self.hidden_size)
        if x_seq.shape[1] == 1:
            return first
        outputs, _ = self.encoder(x_seq[:, :-1], self.initial_state(batch))
        return torch.cat([first, outputs], dim=1)

    # --------------------------------------------------------------- densities

    def step_log_prob(self, x_seq: Tensor) -> Tensor:
        """Per-step conditional log-densities ``log p(x_t | x_<t)``.

        Args:
            x_seq: (batch, T, dim) sequences, T >= 1.

        Returns:
            (batch, T).
        """
        x_seq = self._check_sequence(x_seq, "x_seq")
        batch, steps, _ = x_seq.shape
        context = self.contexts(x_seq).reshape(batch * steps, self.hidden_size)
        values = self.flow.log_prob(x_seq.reshape(batch * steps, self.dim), context)
        return values.view(batch, steps)

    def log_prob(self, x_seq: Tensor) -> Tensor:
        """Log-density of whole sequences, summed over steps.

        Args:
            x_seq: (batch, T, dim) sequences, T >= 1.

        Returns:
            (batch,) ``sum_t log p(x_t | x_<t)``; divide by T for a per-step value.
        """
        return self.step_log_prob(x_seq).sum(dim=1)

    # ---------------------------------------------------------------- sampling

    def _history(self, history: Tensor | None, n: int) -> Tensor | None:
        if history is None:
            return None
        if isinstance(history, Tensor) and history.dim() == 2:
            history = history[None]
        history = self._check_sequence(history, "history", allow_empty=True)
        if history.shape[0] == 1:
            return history.expand(n, -1, -1)
        if history.shape[0] != n:
            raise ValueError(
                f"history must have shape (t, {self.dim}) or ({n}, t, {self.dim}) for n={n}, "
                f"got {tuple(history.shape)}"
            )
        return history

    def sample(self, n: int, steps: int, history: Tensor | None = None) -> Tensor:
        """Draw trajectories step by step (ancestral sampling).

        Args:
            n: number of trajectories.
            steps: number of new steps to draw.
            history: None (start from the learned initial state), (t, dim) one past shared
                by all n trajectories, or (n, t, dim) one per trajectory.

        Returns:
            (n, steps, dim) the new steps only (the history is not repeated).
        """
        check_positive_int(n, "n")
        check_positive_int(steps, "steps")
        history = self._history(history, n)
        state = self.initial_state(n)
        if history is not None:
            state = self.advance(state, history)
        draws = []
        for _ in range(steps):
            x = self.flow.sample(n, self.context(state))
            draws.append(x)
            state = self.advance(state, x)
        return torch.stack(draws, dim=1)

    def forecast(self, history: Tensor, n_samples: int) -> Tensor:
        """One-step-ahead predictive samples of ``x_{t+1}`` given ``x_1..x_t``.

        Args:
            history: (batch, t, dim) observed pasts (t = 0 allowed: the first step).
            n_samples: draws per sequence.

        Returns:
            (n_samples, batch, dim); ``[:, b]`` are draws from ``p(x_{t+1} | history[b])``.
        """
        check_positive_int(n_samples, "n_samples")
        history = self._check_sequence(history, "history", allow_empty=True)
        batch = history.shape[0]
        context = self.context(self.advance(self.initial_state(batch), history))
        x = self.flow.sample(n_samples * batch, context.repeat(n_samples, 1))
        return x.view(n_samples, batch, self.dim)
