"""Checker of the temporal exercise: one step of a TemporalMAF's sequence log-likelihood."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..temporal import TemporalMAF
from ._feedback import _call, _close, _diagnose, _fail, _passed, _randomise, _seeded, _tensor

__all__ = ["check_temporal_step"]


# ---------------------------------------------------------------- 5. temporal step


@torch.no_grad()
def check_temporal_step(step_log_prob: Callable) -> None:
    """Check ``step_log_prob(model, state, x_t) -> (log_p, new_state)`` of a ``TemporalMAF``.

    ``log_p`` (batch,) must be ``log p(x_t | x_<t) = model.flow.log_prob(x_t, context)`` with the
    context ``model.context(state)`` of the state *before* x_t, and ``new_state`` must be
    ``model.advance(state, x_t)``. Run from ``model.initial_state(batch)`` over a sequence, the
    terms are ``model.step_log_prob(x_seq)`` and they add up to ``model.log_prob(x_seq)``.
    """
    name, fn = "temporal step", "step_log_prob"
    specs = [(2, "gru"), (1, "gru"), (3, "lstm"), (1, "lstm"), (4, "gru"), (2, "lstm")]
    with _seeded(505):
        cases = []
        for dim, cell in specs:
            model = TemporalMAF(dim, hidden_size=5, n_layers=2, hidden=(8,), cell=cell).double()
            _randomise(model, 0.5)
            cases.append((model, torch.randn(3, 4, dim, dtype=torch.float64), f"D={dim}, {cell}"))
    for model, x_seq, case in cases:
        expected = model.step_log_prob(x_seq)
        state = model.initial_state(x_seq.shape[0])
        for t in range(x_seq.shape[1]):
            x_t, where = x_seq[:, t], f"{case}, step t={t} of {x_seq.shape[1]}"
            result = _call(name, fn, where, step_log_prob, model, state, x_t.clone())
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                _fail(name, "step_log_prob must return a pair (log_p, new_state)", where)
            log_p = _tensor(result[0], "log_p", (x_seq.shape[0],), name, where)
            next_state = model.advance(state, x_t)
            if not _close(log_p, expected[:, t]):
                context = model.context(state)
                fresh = model.context(model.initial_state(x_seq.shape[0]))
                message = (
                    _diagnose(
                        log_p,
                        expected[:, t],
                        [
                            (
                                model.flow.log_prob(x_t, model.context(next_state)),
                                "you fed x_t to the encoder before scoring it, so x_t predicts "
                                "itself: "
                                "the context must summarise x_<t only; score x_t first, then "
                                "advance",
                            ),
                            (
                                model.flow.log_prob(x_t, torch.zeros_like(context)),
                                "the context is all zeros: use the encoder's state, "
                                "model.context(state)",
                            ),
                            (
                                model.flow.log_prob(x_t, fresh) if t > 0 else None,
                                "x_t is scored with the initial state's context, as if the "
                                "sequence "
                                "started at t: use the state you were given, model.context(state)",
                            ),
                            (
                                -expected[:, t],
                                "log_p has the wrong sign: return log p(x_t | x_<t), "
                                "not the negative log-likelihood",
                            ),
                        ],
                    )
                    or "log_p is not model.flow.log_prob(x_t, model.context(state))"
                )
                _fail(name, message, where)
            got = result[1]
            ok = isinstance(got, (Tensor, tuple, list))
            if ok and not isinstance(got, Tensor):
                ok = len(got) == 2 and all(isinstance(g, Tensor) for g in got)
            if not ok or not _close(model.context(got), model.context(next_state)):
                same = ok and _close(model.context(got), model.context(state))
                _fail(
                    name,
                    "new_state is the state you were given: advance the encoder with "
                    "the observation, model.advance(state, x_t)"
                    if same
                    else "new_state is not model.advance(state, x_t)",
                    where,
                )
            state = next_state
        total = sum(
            _call(name, fn, case, step_log_prob, model, s, x_seq[:, t])[0]
            for t, s in enumerate(_states(model, x_seq))
        )
        if not _close(total, model.log_prob(x_seq)):
            _fail(name, "the steps do not add up to model.log_prob(x_seq)", case)
    _passed(name, len(cases))


def _states(model: TemporalMAF, x_seq: Tensor) -> list:
    """The encoder state before each step of ``x_seq``."""
    states = [model.initial_state(x_seq.shape[0])]
    for t in range(x_seq.shape[1] - 1):
        states.append(model.advance(states[-1], x_seq[:, t]))
    return states
