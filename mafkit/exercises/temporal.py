"""Checker of the temporal exercise: one step of a TemporalMAF's sequence log-likelihood."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..temporal import TemporalMAF
from ._feedback import (
    _call,
    _check_gradients,
    _close,
    _diagnose,
    _fail,
    _keeps_random_state,
    _parts,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
)

__all__ = ["check_temporal_step"]


# ---------------------------------------------------------------- 5. temporal step


def _parts_of(state: object) -> list[Tensor]:
    """The tensors of an encoder state: [h] for a GRU, [h, c] for an LSTM."""
    return [state] if isinstance(state, Tensor) else list(state)


def _clone(state: object) -> object:
    if isinstance(state, Tensor):
        return state.clone()
    return type(state)(s.clone() for s in state)  # the answer's own kind of state


@_keeps_random_state
def check_temporal_step(step_log_prob: Callable, part: str | None = None) -> None:
    """Check ``step_log_prob(model, state, x_t) -> (log_p, new_state)`` of a ``TemporalMAF``.

    ``log_p`` (batch,) must be ``log p(x_t | x_<t) = model.flow.log_prob(x_t, context)`` with the
    context ``model.context(state)`` of the state *before* x_t, and ``new_state`` must be
    ``model.advance(state, x_t)``, every part of it (an LSTM's ``(h, c)``). The check feeds the
    answer's own state into the next step, so the terms of a whole sequence must add up to
    ``model.log_prob(x_seq)``. ``part`` limits the check to ``"log_p"`` or ``"state"``.
    """
    parts, name = _parts("temporal step", part, ("log_p", "state"))
    fn = "step_log_prob"
    specs = [(2, "gru"), (1, "gru"), (3, "lstm"), (1, "lstm"), (4, "gru"), (2, "lstm")]
    with _seeded(505):
        cases = []
        for dim, cell in specs:
            model = TemporalMAF(dim, hidden_size=5, n_layers=2, hidden=(8,), cell=cell).double()
            _randomise(model, 0.5)
            cases.append((model, torch.randn(3, 4, dim, dtype=torch.float64), f"D={dim}, {cell}"))
    for k, (model, x_seq, case) in enumerate(cases):
        with torch.no_grad():
            expected = model.step_log_prob(x_seq)
            total_ref = model.log_prob(x_seq)
        state = model.initial_state(x_seq.shape[0])
        total = torch.zeros_like(total_ref)
        for t in range(x_seq.shape[1]):
            x_t, where = x_seq[:, t], f"{case}, step t={t} of {x_seq.shape[1]}"
            given_x, given_state = x_t.clone(), _clone(state)
            with torch.no_grad():
                result = _call(name, fn, where, step_log_prob, model, given_state, given_x)
            _unchanged(name, fn, "x_t", x_t, given_x, where)
            for before, after in zip(_parts_of(state), _parts_of(given_state)):
                _unchanged(name, fn, "state", before, after, where)
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                _fail(name, "step_log_prob must return a pair (log_p, new_state)", where)
            log_p = _tensor(result[0], "log_p", (x_seq.shape[0],), name, where)
            with torch.no_grad():
                next_state = model.advance(state, x_t)
                if "log_p" in parts and not _close(log_p, expected[:, t]):
                    _wrong_log_p(name, model, state, next_state, x_t, log_p, expected[:, t], where)
            if "state" in parts:
                _check_state(name, model, state, next_state, result[1], where)
                state = result[1]  # the answer's own state goes into the next step
            else:
                state = next_state
            total = total + log_p
        if "log_p" in parts and "state" in parts and not _close(total, total_ref):
            _fail(name, "the steps do not add up to model.log_prob(x_seq)", case)
        if k in (0, 2):
            _temporal_gradients(name, fn, step_log_prob, model, x_seq, parts, case)
    _passed(name, len(cases))


def _wrong_log_p(
    name: str,
    model: TemporalMAF,
    state: object,
    next_state: object,
    x_t: Tensor,
    log_p: Tensor,
    expected: Tensor,
    where: str,
) -> None:
    context = model.context(state)
    fresh = model.context(model.initial_state(x_t.shape[0]))
    first_step = _close(context, fresh)
    message = (
        _diagnose(
            log_p,
            expected,
            [
                (
                    model.flow.log_prob(x_t, model.context(next_state)),
                    "you fed x_t to the encoder before scoring it, so x_t predicts itself: "
                    "the context must summarise x_<t only; score x_t first, then advance",
                ),
                (
                    model.flow.log_prob(x_t, torch.zeros_like(context)),
                    "the context is all zeros: use the encoder's state, model.context(state)",
                ),
                (
                    None if first_step else model.flow.log_prob(x_t, fresh),
                    "x_t is scored with the initial state's context, as if the sequence "
                    "started at t: use the state you were given, model.context(state)",
                ),
                (
                    -expected,
                    "log_p has the wrong sign: return log p(x_t | x_<t), "
                    "not the negative log-likelihood",
                ),
            ],
        )
        or "log_p is not model.flow.log_prob(x_t, model.context(state))"
    )
    _fail(name, message, where)


def _check_state(
    name: str, model: TemporalMAF, state: object, next_state: object, got: object, where: str
) -> None:
    want = _parts_of(next_state)
    if isinstance(got, Tensor) and len(want) == 2:
        _fail(
            name,
            "new_state is a single tensor, but an LSTM's state is the pair (h, c): return "
            "both, model.advance(state, x_t) as it is (dropping the cell state c loses "
            "the LSTM's memory)",
            where,
        )
    ok = isinstance(got, (Tensor, tuple, list))
    if ok and not isinstance(got, Tensor):
        ok = len(got) == len(want) and all(isinstance(g, Tensor) for g in got)
    if not ok:
        _fail(name, "new_state is not a state like model.advance(state, x_t) returns", where)
    got_parts = _parts_of(got)
    if all(g.shape == w.shape and _close(g, w) for g, w in zip(got_parts, want)):
        return
    if _close(got_parts[0], _parts_of(state)[0]):
        _fail(
            name,
            "new_state is the state you were given: advance the encoder with "
            "the observation, model.advance(state, x_t)",
            where,
        )
    if len(want) == 2 and _close(got_parts[0], want[0]):
        _fail(
            name,
            "new_state has the right h but the wrong cell state c: an LSTM's state is the "
            "pair (h, c) and both go into the next step; return model.advance(state, x_t) "
            "whole",
            where,
        )
    _fail(name, "new_state is not model.advance(state, x_t)", where)


def _temporal_gradients(
    name: str,
    fn: str,
    step_log_prob: Callable,
    model: TemporalMAF,
    x_seq: Tensor,
    parts: set[str],
    case: str,
) -> None:
    """Gradients of one step's log_p and new state with respect to x_t and the weights."""
    x_t = x_seq[:, 1].clone().requires_grad_()
    state = model.advance(model.initial_state(x_seq.shape[0]), x_seq[:, 0])
    inputs = [x_t, *model.parameters()]
    log_p, new_state = _call(name, fn, case, step_log_prob, model, state, x_t)
    where = f"{case}, step t=1, with gradients"
    if "log_p" in parts:
        ref = model.flow.log_prob(x_t, model.context(state))
        _check_gradients(name, fn, "log_p", log_p, ref, inputs, where)
    if "state" in parts:
        for got, ref in zip(_parts_of(new_state), _parts_of(model.advance(state, x_t))):
            _check_gradients(name, fn, "new_state", got, ref, inputs, where)
