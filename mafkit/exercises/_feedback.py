"""Shared machinery of the exercise checkers: run the student's code, explain what went wrong.

Each ``check_*`` function calls the student's function (or class) on fresh cases built from a
fixed seed (several dimensions D, D = 1 included, random orders, float64), compares the result
with mafkit's own implementation and with the properties that must hold, and either prints one
line (``✓ masks: all 12 cases passed``) or raises :class:`ExerciseError`, an ``AssertionError``
whose message says what is wrong and how to fix it. The caller's random state is left untouched.
"""

from __future__ import annotations

import copy
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["ExerciseError", "TOL"]

TOL = 1e-6


class ExerciseError(AssertionError):
    """A failed exercise check. In Jupyter it shows its message only, without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing a traceback
        return ["✗ " + str(self)]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's generator seeded; the caller's random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _student_line(err: BaseException) -> str:
    """' at line N: code' for the last frame of the student's own code, or ''."""
    package = os.path.dirname(os.path.dirname(__file__))  # all of mafkit, not just here
    skip = (package, os.path.dirname(torch.__file__))
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(skip)]
    if not frames or not frames[-1].line:
        return ""
    return f"\n  at line {frames[-1].lineno}: {frames[-1].line}"


def _call(exercise: str, name: str, case: str, fn: Callable, *args: object) -> object:
    """Call the student's ``fn``; turn a stub's NotImplementedError or a crash into a hint."""
    try:
        return fn(*args)
    except ExerciseError:
        raise
    except NotImplementedError:
        raise ExerciseError(
            f"{exercise}: you have not written `{name}` yet. Replace the line "
            "`raise NotImplementedError` with your code, run that cell, then run this one again."
        ) from None
    except Exception as err:
        hint = ""
        if "dtype" in str(err) or "Double" in str(err):
            hint = (
                "\n  hint: the checker works in float64; make new tensors with "
                "torch.zeros_like(...) or dtype=z.dtype so that they match."
            )
        raise ExerciseError(
            f"{exercise}: your `{name}` raised {type(err).__name__}: {err}{_student_line(err)}"
            f"{hint}\n  (case: {case})"
        ) from err


def _fail(exercise: str, message: str, case: str) -> None:
    raise ExerciseError(f"{exercise}: {message}\n  (case: {case})")


def _tensor(value: object, what: str, shape: tuple[int, ...], exercise: str, case: str) -> Tensor:
    """``value`` as a tensor of the given shape, or a failure saying what came back."""
    try:
        value = torch.as_tensor(value)
    except Exception:
        _fail(exercise, f"{what} should be a tensor, got {type(value).__name__}", case)
    if tuple(value.shape) != shape:
        _fail(exercise, f"{what} should have shape {shape}, got {tuple(value.shape)}", case)
    return value


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=TOL, atol=TOL)


def _diagnose(value: Tensor, expected: Tensor, mistakes: list[tuple[Tensor | None, str]]) -> str:
    """The message of the first known mistake that reproduces ``value`` ('' if none does)."""
    for candidate, message in mistakes:
        if candidate is not None and not _close(candidate, expected) and _close(value, candidate):
            return message
    return ""


def _randomise(module: nn.Module, std: float) -> None:
    """Redraw every trainable parameter from N(0, std²) so that no structure hides behind small
    weights (frozen parameters and anything named like a mask are left alone)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad and "mask" not in name.lower():
                p.normal_(0.0, std)


def _forbid(module: nn.Module, method: str, exercise: str, hint: str) -> nn.Module:
    """A copy of ``module`` whose ``method`` (the one call that is the answer) fails with a hint."""
    module = copy.deepcopy(module)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise ExerciseError(f"{exercise}: {hint}")

    object.__setattr__(module, method, forbidden)
    return module


def _passed(exercise: str, n_cases: int) -> None:
    print(f"✓ {exercise}: all {n_cases} cases passed")


def _orders(dims: list[int]) -> list[Tensor]:
    """One order per D: natural for the first case of each D, random otherwise."""
    seen: set[int] = set()
    orders = []
    for dim in dims:
        orders.append(torch.arange(dim) if dim not in seen else torch.randperm(dim))
        seen.add(dim)
    return orders


# ---------------------------------------------------------------- guards shared by every checker


def _keeps_random_state(check: Callable) -> Callable:
    """Run a checker with torch's, Python's and NumPy's random states restored afterwards, so
    that running a check never changes what the rest of the notebook draws."""
    import functools
    import random

    @functools.wraps(check)
    def wrapper(*args: object, **kwargs: object) -> object:
        python_state = random.getstate()
        numpy_state = _numpy_state()
        try:
            with torch.random.fork_rng(devices=[]):
                return check(*args, **kwargs)
        finally:
            random.setstate(python_state)
            if numpy_state is not None:
                import numpy

                numpy.random.set_state(numpy_state)

    return wrapper


def _numpy_state() -> object:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a dependency of torch's tensors here
        return None
    return numpy.random.get_state()


def _parts(exercise: str, part: str | None, allowed: tuple[str, ...]) -> tuple[set[str], str]:
    """The parts a check covers (all by default) and the label its verdict line uses."""
    if part is None:
        return set(allowed), exercise
    if part not in allowed:
        raise ValueError(f"{exercise}: part must be one of {allowed} or None, got {part!r}")
    return {part}, f"{exercise} ({part})"


def _unchanged(exercise: str, fn: str, what: str, before: object, after: object, case: str) -> None:
    """Fail if the student's code changed an input (a tensor or a module's state) in place."""
    if isinstance(before, nn.Module):
        before, after = before.state_dict(), after.state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        if changed:
            _fail(
                exercise,
                f"your `{fn}` changed {what} in place ({changed[0]}): read its parameters "
                "and buffers, do not write to them",
                case,
            )
        return
    if not torch.equal(before, after):
        _fail(
            exercise,
            f"your `{fn}` changed its input `{what}` in place (for example "
            f"{what}[:, i] = ... or {what} += ...): the caller still needs it; work on a "
            f"new tensor ({what}.clone() or torch.zeros_like({what}))",
            case,
        )


def _no_graph_message(fn: str, what: str) -> str:
    return (
        f"{what} carries no gradient: your `{fn}` computed it under torch.no_grad() or "
        "detached it (.detach(), .item(), .numpy(), torch.tensor(...)); a flow is trained "
        "through this computation, so keep it differentiable"
    )


def _check_gradients(
    exercise: str,
    fn: str,
    what: str,
    value: Tensor,
    expected: Tensor,
    inputs: list[Tensor],
    case: str,
    wrong: str = "",
) -> None:
    """Compare the gradients of a random projection of ``value`` with those of ``expected``
    with respect to ``inputs`` (tensors that require gradients)."""
    if not value.requires_grad:
        _fail(exercise, _no_graph_message(fn, what), case)
    with _seeded(7):
        weight = torch.randn(expected.shape, dtype=expected.dtype)
    got = torch.autograd.grad((value * weight).sum(), inputs, retain_graph=True, allow_unused=True)
    ref = torch.autograd.grad(
        (expected * weight).sum(), inputs, retain_graph=True, allow_unused=True
    )
    for g, r in zip(got, ref):
        g = torch.zeros_like(r) if g is None and r is not None else g
        if r is None:
            continue
        if not _close(g, r):
            _fail(
                exercise,
                wrong
                or (
                    f"{what} has the right values but the wrong gradients: part of the "
                    "computation was detached (.detach(), torch.no_grad() or a value "
                    "copied out of the graph), so training would not see it"
                ),
                case,
            )


def _code_names(code: object) -> set[str]:
    """Every global or attribute name used by a code object and the functions inside it."""
    names = set(getattr(code, "co_names", ()))
    for const in getattr(code, "co_consts", ()):
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _uses_any(answer: object, forbidden: dict[str, object]) -> str:
    """The name under which ``answer`` (a function or class) reaches a forbidden object through
    its module's globals, or ''."""
    functions = [answer]
    if isinstance(answer, type):
        functions = [v for v in vars(answer).values() if callable(v)]
    for function in functions:
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        env = getattr(function, "__globals__", {})
        seen = [env.get(name) for name in _code_names(code)]
        seen += [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()]
        for value in seen:
            for label, obj in forbidden.items():
                if value is obj:
                    return label
    return ""


@contextmanager
def _forbidden(exercise: str, targets: list[tuple[object, str]], hint: str) -> Iterator[None]:
    """Replace ``owner.attr`` for each target by a function that fails with ``hint`` while the
    student's code runs (the shortcut the notebook rules out); restore them afterwards."""
    saved = []

    def refuse(*args: object, **kwargs: object) -> None:
        raise ExerciseError(f"{exercise}: {hint}")

    for owner, attr in targets:
        own = vars(owner)
        saved.append((owner, attr, attr in own, own.get(attr)))
        setattr(owner, attr, refuse)
    try:
        yield
    finally:
        for owner, attr, had, value in reversed(saved):
            if had:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)
