"""Checkers for the classroom notebooks in ``exercises/``: run a student's code, explain mistakes.

Each ``check_*`` function calls the student's function (or class) on fresh cases built from a
fixed seed (several dimensions D, D = 1 included, random orders, float64), compares the result
with mafkit's own implementation and with the properties that must hold, and either prints one
line (``✓ masks: all 12 cases passed``) or raises :class:`ExerciseError`, an ``AssertionError``
whose message says what is wrong and how to fix it. The caller's random state is left untouched.
"""

from __future__ import annotations

import copy
import math
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .flows import IAF, MAF
from .made import MADE
from .masks import hidden_mask, input_degrees, output_mask
from .temporal import TemporalMAF
from .transforms import BatchNorm, MaskedAffineAutoregressive

__all__ = [
    "ExerciseError",
    "check_masks",
    "check_maf_inverse",
    "check_iaf_from_maf",
    "check_context_path",
    "check_temporal_step",
    "check_triangular_log_det",
    "check_batch_norm",
]

TOL = 1e-6


class ExerciseError(AssertionError):
    """A failed exercise check. In Jupyter it shows its message only, without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing a traceback
        return ["✗ " + str(self)]


# ---------------------------------------------------------------- shared machinery


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's generator seeded; the caller's random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _student_line(err: BaseException) -> str:
    """' at line N: code' for the last frame of the student's own code, or ''."""
    skip = (os.path.dirname(__file__), os.path.dirname(torch.__file__))
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


# ---------------------------------------------------------------- 1. masks


def check_masks(made_masks: Callable) -> None:
    """Check ``made_masks(order, hidden) -> (degrees, masks)``, a MADE with one output per variable.

    ``degrees`` is the list ``[input degrees (D,), degrees of hidden layer 1, ...]`` and
    ``masks`` the list ``[mask into hidden layer 1 (h1, D), ..., output mask (D, h_last)]``.
    Input degrees must be the 1-based positions in ``order``; hidden degrees lie in 1..D-1 and
    cover all of them (the widths are at least D-1); hidden masks connect where
    ``d_out >= d_in``, the output mask where ``d_out > d_in``; so output i depends on exactly the
    variables before i in the order.
    """
    name, fn = "masks", "made_masks"
    dims = [3, 1, 2, 4, 5, 3, 1, 4, 5, 8, 2, 8]
    with _seeded(101):
        orders = _orders(dims)
    for i, (dim, order) in enumerate(zip(dims, orders)):
        hidden = (max(dim - 1, 1) + i % 3,) if i % 2 == 0 else (dim + 2, max(dim - 1, 1))
        case = f"D={dim}, order={order.tolist()}, hidden={hidden}"
        result = _call(name, fn, case, made_masks, order.clone(), hidden)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "made_masks must return a pair (degrees, masks)", case)
        degrees, masks = result
        if len(degrees) != len(hidden) + 1 or len(masks) != len(hidden) + 1:
            _fail(
                name,
                f"with {len(hidden)} hidden layer(s) return {len(hidden) + 1} degree "
                f"tensors and {len(hidden) + 1} masks, got {len(degrees)} and {len(masks)}",
                case,
            )
        _check_degrees(name, dim, order, hidden, degrees, case)
        degrees = [torch.as_tensor(d).long() for d in degrees]
        sizes = [dim, *hidden, dim]
        masks = [
            _tensor(m, f"mask {k + 1}", (sizes[k + 1], sizes[k]), name, case) != 0
            for k, m in enumerate(masks)
        ]
        _check_mask_rules(name, degrees, masks, case)
        _check_reach(name, masks, order, case)
    _passed(name, len(dims))


def _check_degrees(
    name: str, dim: int, order: Tensor, hidden: tuple[int, ...], degrees: list, case: str
) -> None:
    got = _tensor(degrees[0], "the input degrees", (dim,), name, case).long()
    expected = input_degrees(order)
    if not torch.equal(got, expected):
        if torch.equal(got, expected - 1):
            msg = (
                "the input degrees are off by one: they are 1-based, the first variable of "
                "the order has degree 1"
            )
        elif torch.equal(got, order + 1):
            msg = (
                "you gave variable i the degree order[i] + 1, but order[k] is the k-th "
                "variable modelled: variable order[k] gets degree k + 1 "
                "(degrees[order] = arange(1, D + 1))"
            )
        else:
            msg = "the input degrees are wrong: variable order[k] must get degree k + 1"
        _fail(name, f"{msg}; expected {expected.tolist()}, got {got.tolist()}", case)
    for k, width in enumerate(hidden):
        d = _tensor(
            degrees[k + 1], f"the degrees of hidden layer {k + 1}", (width,), name, case
        ).long()
        if dim == 1:
            continue  # no conditional has a predecessor; any degree >= 1 feeds nothing
        if (d < 1).any():
            _fail(
                name,
                f"hidden layer {k + 1} has a unit of degree {d.min().item()}: hidden "
                "degrees start at 1 (a unit of degree 0 sees no input at all)",
                case,
            )
        if (d > dim - 1).any():
            _fail(
                name,
                f"hidden layer {k + 1} has a unit of degree {d.max().item()}: a unit of "
                f"degree >= D = {dim} can feed no output; use degrees 1..D-1",
                case,
            )
        missing = sorted(set(range(1, dim)) - set(d.tolist()))
        if missing:
            _fail(
                name,
                f"hidden layer {k + 1} (width {width} >= D-1) has no unit of degree "
                f"{missing[0]}, so some conditional cannot see all its predecessors: "
                "cycle the degrees, torch.arange(width) % (D - 1) + 1",
                case,
            )


def _check_mask_rules(name: str, degrees: list[Tensor], masks: list[Tensor], case: str) -> None:
    for k in range(len(masks) - 1):
        d_out, d_in = degrees[k + 1], degrees[k]
        if torch.equal(masks[k], hidden_mask(d_out, d_in) > 0):
            continue
        if torch.equal(masks[k], output_mask(d_out, d_in) > 0):
            _fail(
                name,
                f"mask {k + 1} (into hidden layer {k + 1}) uses d_out > d_in: a hidden "
                "unit of degree k must also see units of degree k, use >= for hidden "
                "masks",
                case,
            )
        if torch.equal(masks[k], hidden_mask(d_in, d_out).T > 0):
            _fail(
                name,
                f"mask {k + 1} has the inequality the wrong way round: connect unit j "
                "to unit i where degree_out[i] >= degree_in[j]",
                case,
            )
        _fail(
            name,
            f"mask {k + 1} (into hidden layer {k + 1}) is not hidden_mask: entry [i, j] "
            "must be 1 exactly where degree_out[i] >= degree_in[j]",
            case,
        )
    d_out, d_in, mask = degrees[0], degrees[-1], masks[-1]
    if torch.equal(mask, output_mask(d_out, d_in) > 0):
        return
    if torch.equal(mask, hidden_mask(d_out, d_in) > 0):
        reach = _reach(masks)
        own = [i for i in range(len(d_out)) if reach[i, i]]
        i = own[0] if own else int(d_out.argmax())
        _fail(
            name,
            f"output {i} depends on input {i}: use a strict inequality (d_out > d_in) "
            "for the output mask, so that a variable is not part of its own condition",
            case,
        )
    if torch.equal(mask, output_mask(d_out - 1, d_in) > 0):
        _fail(
            name,
            "the output mask uses 0-based output degrees (off by one): the output of "
            "variable i has the same degree as input i",
            case,
        )
    _fail(
        name,
        "the output mask is wrong: entry [i, j] must be 1 exactly where the degree of "
        "variable i is > the degree of hidden unit j",
        case,
    )


def _reach(masks: list[Tensor]) -> Tensor:
    """(D, D) bool: which inputs each output can reach through the masks."""
    reach = masks[0].double()
    for mask in masks[1:]:
        reach = (mask.double() @ reach).clamp(max=1)
    return reach > 0


def _check_reach(name: str, masks: list[Tensor], order: Tensor, case: str) -> None:
    reach, degree = _reach(masks), input_degrees(order)
    for i in range(len(order)):
        for j in range(len(order)):
            if reach[i, j] and degree[j] >= degree[i]:
                _fail(
                    name,
                    f"output {i} depends on input {j}, which does not come before it "
                    "in the order",
                    case,
                )
            if not reach[i, j] and degree[j] < degree[i]:
                _fail(name, f"output {i} cannot see input {j}, which comes before it", case)


# ---------------------------------------------------------------- 2. MAF inverse


def _layer_cases(seed: int) -> list[tuple[MaskedAffineAutoregressive, Tensor, Tensor | None, str]]:
    """MAF layers (float64, random weights) with noise z and optional context."""
    dims = [3, 1, 2, 3, 5, 2, 5, 8, 8, 4, 3, 6]
    cases = []
    with _seeded(seed):
        for i, (dim, order) in enumerate(zip(dims, _orders(dims))):
            context_dim = 2 if i >= 10 else 0
            layer = MaskedAffineAutoregressive(dim, (16,), context_dim, order).double()
            _randomise(layer, 0.5)
            z = torch.randn(6, dim, dtype=torch.float64)
            context = torch.randn(6, context_dim, dtype=torch.float64) if context_dim else None
            text = f"D={dim}, order={order.tolist()}" + (", with context" if context_dim else "")
            cases.append((layer, z, context, text))
    return cases


def _passes(
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    n: int,
    step: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> tuple[Tensor, list[Tensor]]:
    """Run ``n`` MADE passes from x = 0 with an update rule; return x and each pass's log-scale."""
    x, scales = torch.zeros_like(z), []
    for _ in range(n):
        shift, log_scale = layer.shift_and_log_scale(x, context)
        x = step(shift, log_scale, z)
        scales.append(log_scale)
    return x, scales


def _index_loop(layer: MaskedAffineAutoregressive, z: Tensor, context: Tensor | None) -> Tensor:
    x = torch.zeros_like(z)
    for i in range(z.shape[1]):
        shift, log_scale = layer.shift_and_log_scale(x, context)
        x[:, i] = shift[:, i] + torch.exp(log_scale[:, i]) * z[:, i]
    return x


@torch.no_grad()
def check_maf_inverse(maf_inverse: Callable) -> None:
    """Check ``maf_inverse(layer, z, context=None) -> (x, log_det)`` of a MAF layer.

    ``x`` must be the point with ``layer.forward(x) == z`` (computed with D sequential passes of
    ``layer.shift_and_log_scale``) and ``log_det`` must be ``log|det dx/dz| = sum_i s_i``, shape
    (batch,).
    """
    name, fn = "MAF inverse", "maf_inverse"
    cases = _layer_cases(202)
    for layer, z, context, case in cases:
        dim, batch = z.shape[1], z.shape[0]
        student_layer = _forbid(
            layer,
            "inverse",
            name,
            "do not call layer.inverse, it is the answer: write the loop "
            "with layer.shift_and_log_scale",
        )
        result = _call(name, fn, case, maf_inverse, student_layer, z.clone(), context)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "maf_inverse must return a pair (x, log_det)", case)
        x = _tensor(result[0], "x", (batch, dim), name, case)
        log_det = torch.as_tensor(result[1])
        if tuple(log_det.shape) == (batch, dim):
            _fail(
                name,
                "log_det has shape (batch, D): sum the log-scales over the variables, "
                "log_det has shape (batch,)",
                case,
            )
        log_det = _tensor(log_det, "log_det", (batch,), name, case)
        x_ref, log_det_ref = layer.inverse(z, context)
        if not _close(x, x_ref):
            _maf_inverse_wrong_x(name, layer, z, context, x, x_ref, case)
        if not _close(log_det, log_det_ref):
            _, scales = _passes(layer, z, context, dim, lambda m, s, z: m + torch.exp(s) * z)
            message = (
                _diagnose(
                    log_det,
                    log_det_ref,
                    [
                        (
                            -log_det_ref,
                            "log_det has the wrong sign: noise to data, log|det dx/dz| = "
                            "+sum_i s_i (the forward pass has -sum_i s_i)",
                        ),
                        (
                            torch.zeros_like(log_det_ref),
                            "log_det is zero: the affine map scales "
                            "variable i by exp(s_i), add sum_i s_i",
                        ),
                        (
                            scales[0].sum(1),
                            "log_det uses the log-scales of the first pass; use those of "
                            "the last pass, computed from the finished x",
                        ),
                        (
                            sum(scales).sum(1),
                            "log_det adds up the log-scales of every pass; only the "
                            "last pass's log-scales (from the finished x) count",
                        ),
                    ],
                )
                or "log_det is not log|det dx/dz| = sum_i s_i with s from the final pass"
            )
            _fail(name, message, case)
    _passed(name, len(cases))


def _maf_inverse_wrong_x(
    name: str,
    layer: MaskedAffineAutoregressive,
    z: Tensor,
    context: Tensor | None,
    x: Tensor,
    x_ref: Tensor,
    case: str,
) -> None:
    dim, order = z.shape[1], layer.order
    natural = torch.equal(order, torch.arange(dim))
    good = lambda m, s, z: m + torch.exp(s) * z  # noqa: E731
    mistakes = [
        (
            _passes(layer, z, None, dim, good)[0] if context is not None else None,
            "x ignores the context: pass `context` on to layer.shift_and_log_scale",
        ),
        (
            _passes(layer, z, context, dim, lambda m, s, z: (z - m) * torch.exp(-s))[0],
            "you used the data-to-noise formula z = (x - mu) exp(-s); solve it for x instead: "
            "x = mu + exp(s) z",
        ),
        (
            _passes(layer, z, context, dim, lambda m, s, z: m + torch.exp(-s) * z)[0],
            "the scale is wrong: z = (x - mu) exp(-s) gives x = mu + exp(s) z, not exp(-s)",
        ),
        (
            None if natural else _index_loop(layer, z, context),
            f"x is built in the index order 0..D-1, but this layer's order is {order.tolist()}: "
            "recompute all of x in each of the D passes (or loop over layer.order)",
        ),
        (
            _passes(layer, z, context, 1, good)[0] if dim > 1 else None,
            "only the first variable of the order is right: one MADE pass is not enough, repeat "
            "it D times, feeding the current x back in",
        ),
        (
            _passes(layer, z, context, dim - 1, good)[0] if dim > 2 else None,
            "the last variable of the order is wrong: you need D passes (after pass k the first k "
            "variables of the order are exact)",
        ),
    ]
    message = _diagnose(x, x_ref, mistakes)
    if not message:
        wrong = ~torch.isclose(x.double(), x_ref, rtol=TOL, atol=TOL).all(0)
        k = int(torch.nonzero(wrong[order])[0])
        message = (
            f"x does not invert the layer (layer(x)[0] should give back z): variable "
            f"{int(order[k])}, position {k} in the order, is the first wrong one"
        )
    _fail(name, message, case)


# ---------------------------------------------------------------- 3. IAF from MAF


@torch.no_grad()
def check_iaf_from_maf(iaf_sample: Callable) -> None:
    """Check ``iaf_sample(maf, u) -> (x, log_q)``: the IAF sampling pass built from a MAF's layers.

    ``x`` is the MAF's data-to-noise map applied to the noise ``u`` (each layer's parallel
    forward pass, first layer first) and ``log_q = maf.base.log_prob(u) - log|det dx/du|``,
    which is what ``IAF.from_maf(maf).sample_and_log_prob`` computes.
    """
    name, fn = "IAF from MAF", "iaf_sample"
    specs = [
        (2, 2, "reversed", "normal"),
        (1, 1, "reversed", "normal"),
        (1, 3, "reversed", "normal"),
        (3, 2, "random", "normal"),
        (5, 3, "random", "normal"),
        (8, 2, "reversed", "normal"),
        (4, 1, "random", "normal"),
        (3, 3, "random", "mog"),
        (2, 2, "random", "mog"),
        (6, 3, "reversed", "normal"),
    ]
    with _seeded(303):
        cases = []
        for dim, n_layers, order, base in specs:
            maf = MAF(dim, n_layers, (12,), order=order, base=base, n_components=3).double()
            _randomise(maf, 0.4)
            cases.append(
                (
                    maf,
                    torch.randn(5, dim, dtype=torch.float64),
                    f"D={dim}, {n_layers} layer(s), order='{order}', base='{base}'",
                )
            )
    for maf, u, case in cases:
        result = _call(name, fn, case, iaf_sample, maf, u.clone())
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "iaf_sample must return a pair (x, log_q)", case)
        x = _tensor(result[0], "x", tuple(u.shape), name, case)
        log_q = _tensor(result[1], "log_q", (u.shape[0],), name, case)
        x_ref, log_det = IAF.from_maf(maf).inverse(u)  # log|det dx/du|
        if not _close(x, x_ref):
            rev = u
            for t in reversed(maf.transforms):
                rev, _ = t(rev)
            message = (
                _diagnose(
                    x,
                    x_ref,
                    [
                        (
                            maf.inverse(u)[0],
                            "you ran the layers' inverse, which is MAF sampling "
                            "(sequential); the IAF samples with each layer's parallel "
                            "forward pass, x = maf.transforms[k](x)[0]",
                        ),
                        (
                            rev,
                            "the layers run last to first; the IAF's sampling pass is the MAF's "
                            "data-to-noise pass, so apply maf.transforms first to last",
                        ),
                        (u, "x equals u: pass u through every layer"),
                    ],
                )
                or "x is not the MAF's forward pass applied to u, layer by layer"
            )
            _fail(name, message, case)
        log_base = maf.base.log_prob(u)
        log_q_ref = log_base - log_det
        if not _close(log_q, log_q_ref):
            h, lds = u, []
            for t in maf.transforms:
                h, ld = t(h)
                lds.append(ld)
            std_normal = -0.5 * (u.square().sum(1) + u.shape[1] * math.log(2 * math.pi))
            message = (
                _diagnose(
                    log_q,
                    log_q_ref,
                    [
                        (
                            log_base + log_det,
                            "the log-det term has the wrong sign: "
                            "log q(x) = log p(u) - log|det dx/du|",
                        ),
                        (
                            log_base,
                            "the log-det term is missing: log q(x) = log p(u) - log|det dx/du|, "
                            "summed over the layers",
                        ),
                        (-log_det, "the base density is missing: add maf.base.log_prob(u)"),
                        (
                            log_base - lds[-1],
                            "only the last layer's log-det is there: sum the log-dets "
                            "of all layers",
                        ),
                        (
                            log_base - lds[0],
                            "only the first layer's log-det is there: sum the log-dets "
                            "of all layers",
                        ),
                        (
                            maf.log_prob(x),
                            "you scored x with the MAF's density; the IAF's density of "
                            "its own sample is log p(u) - log|det dx/du|",
                        ),
                        (
                            maf.base.log_prob(x) - log_det,
                            "evaluate the base density at the noise u, " "not at the sample x",
                        ),
                        (
                            std_normal - log_det,
                            "use maf.base.log_prob(u): this flow's base is not a "
                            "standard normal",
                        ),
                    ],
                )
                or "log_q is not log p(u) - log|det dx/du|"
            )
            _fail(name, message, case)
    _passed(name, len(cases))


# ---------------------------------------------------------------- 4. context path


def _dependencies(model: nn.Module, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Output of the model and where it depends on x and on the context, over all points."""
    out = model(x, context)
    jac_x, jac_c = [], []
    for b in range(x.shape[0]):
        jx, jc = torch.autograd.functional.jacobian(
            lambda xb, cb: model(xb[None], cb[None])[0], (x[b], context[b])
        )
        jac_x.append(jx)
        jac_c.append(jc)
    return out, torch.stack(jac_x).ne(0).any(0), torch.stack(jac_c).ne(0).any(0)


def check_context_path(conditional_made: Callable) -> None:
    """Check ``ConditionalMADE(dim, width, context_dim, order)``: a MADE with a context path.

    Its ``forward(x, context)`` maps (batch, dim) and (batch, context_dim) to (batch, dim). With
    random weights, output i must depend on exactly the variables before i in the order, and on
    every component of the context (the first variable of the order included).
    """
    name, cls = "context path", "ConditionalMADE"
    specs = [(3, 2), (1, 1), (1, 3), (2, 2), (3, 1), (4, 3), (5, 2), (2, 1), (4, 2), (6, 3)]
    with _seeded(404):
        orders = _orders([d for d, _ in specs])
        data = [(torch.randn(8, d), torch.randn(8, c)) for d, c in specs]
    for (dim, context_dim), order, (x, context) in zip(specs, orders, data):
        width = 2 * dim + 2
        case = f"D={dim}, width={width}, context_dim={context_dim}, order={order.tolist()}"
        model = _call(name, cls, case, conditional_made, dim, width, context_dim, order.clone())
        if not isinstance(model, nn.Module):
            _fail(name, f"{cls}(...) should build an nn.Module, got {type(model).__name__}", case)
        with _seeded(405):
            _randomise(model, 1.0)
        out, dep_x, dep_c = _call(name, f"{cls}.forward", case, _dependencies, model, x, context)
        _tensor(out, "the output", (8, dim), name, case)
        degree = input_degrees(order)
        for i in range(dim):
            if dep_x[i, i]:
                _fail(
                    name,
                    f"output {i} depends on input {i}: use a strict inequality "
                    "(d_out > d_in) for the output mask",
                    case,
                )
            for j in range(dim):
                if dep_x[i, j] and degree[j] > degree[i]:
                    _fail(
                        name,
                        f"output {i} depends on input {j}, which comes after it in the "
                        "order: check the degrees and masks",
                        case,
                    )
                if not dep_x[i, j] and degree[j] < degree[i]:
                    _fail(
                        name,
                        f"output {i} ignores input {j}, which comes before it: let the "
                        "hidden degrees cycle through 0..D-1 so every degree is there",
                        case,
                    )
        if not dep_c.any():
            _fail(
                name,
                "no output depends on the context: it is ignored or masked out. Add it "
                "to the first hidden layer through an ordinary, unmasked "
                "nn.Linear(context_dim, width)",
                case,
            )
        first = int(order[0])
        if not dep_c[first].any():
            _fail(
                name,
                f"output {first}, the first variable of the order, does not depend on "
                "the context: its output only listens to hidden units of degree 0. Give "
                "some hidden units degree 0 (mafkit.hidden_degrees(width, dim, lowest=0))",
                case,
            )
        if not dep_c.all():
            i, c = (int(v) for v in torch.nonzero(~dep_c)[0])
            _fail(
                name,
                f"output {i} does not depend on context component {c}: every unit of "
                "the first hidden layer must see all of the context (no mask on it)",
                case,
            )
        expected = MADE(dim, (width,), 1, context_dim, order).connectivity()
        if not torch.equal(dep_x, expected):  # implied by the checks above; kept as a guard
            _fail(name, "the outputs do not depend on x as mafkit.MADE's do", case)
    _passed(name, len(specs))


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


# ---------------------------------------------------------------- 6. log-dets and batch norm


@torch.no_grad()
def check_triangular_log_det(triangular_log_det: Callable) -> None:
    """Check ``triangular_log_det(jac) -> (batch,)`` for Jacobians triangular in some order.

    ``jac`` is (batch, D, D), triangular once rows and columns follow an order (so its
    determinant is the product of its diagonal); the answer is ``sum_i log|jac[:, i, i]|``.
    """
    name, fn = "triangular log-det", "triangular_log_det"
    dims = [3, 1, 2, 4, 5, 3, 8, 6]
    with _seeded(606):
        cases = []
        for dim, order in zip(dims, _orders(dims)):
            lower = torch.randn(4, dim, dim, dtype=torch.float64).tril(-1)
            diag = torch.exp(torch.randn(4, dim, dtype=torch.float64))
            diag = diag * torch.where(torch.rand(4, dim) < 0.4, -1.0, 1.0).double()
            lower = lower + torch.diag_embed(diag)
            rank = input_degrees(order) - 1  # position of each variable in the order
            jac = lower[:, rank][:, :, rank]  # triangular after sorting by the order
            cases.append((jac, f"D={dim}, triangular in the order {order.tolist()}"))
    for jac, case in cases:
        result = _call(name, fn, case, triangular_log_det, jac.clone())
        value = _tensor(result, "the log-det", (jac.shape[0],), name, case)
        diag = torch.diagonal(jac, dim1=1, dim2=2)
        expected = diag.abs().log().sum(1)
        if torch.isnan(value).any():
            _fail(
                name,
                "the log-det is NaN: some diagonal entries are negative; the log-det "
                "is sum_i log|J_ii|, take the absolute value",
                case,
            )
        if not _close(value, expected):
            message = (
                _diagnose(
                    value,
                    expected,
                    [
                        (
                            diag.sum(1),
                            "you summed the diagonal entries; the log-det sums their logs, "
                            "sum_i log|J_ii|",
                        ),
                        (
                            diag.abs().prod(1),
                            "you returned |det J| = prod_i |J_ii|; take its log "
                            "(better: sum the logs, a product can overflow)",
                        ),
                        (diag.abs().log().mean(1), "you averaged the log-diagonal; sum it"),
                        (-expected, "the log-det has the wrong sign: it is +sum_i log|J_ii|"),
                        (
                            diag.abs().log()[:, 0],
                            "you took only the first diagonal entry; sum all D",
                        ),
                    ],
                )
                or "the log-det is not sum_i log|J_ii|"
            )
            _fail(name, message, case)
    _passed(name, len(cases))


@torch.no_grad()
def check_batch_norm(batch_norm: Callable) -> None:
    """Check ``batch_norm(bn, x) -> (z, log_det)``, the data-to-noise pass of ``mafkit.BatchNorm``.

    ``z = exp(log_gamma) (x - m) / sqrt(v + eps) + beta`` with the batch's mean and biased
    variance in training mode and ``bn.running_mean``, ``bn.running_var`` in evaluation mode;
    ``log_det = sum(log_gamma) - 0.5 sum(log(v + eps))`` for the same v, shape (batch,). In
    evaluation mode a point's result must not depend on the rest of its batch.
    """
    name, fn = "batch norm", "batch_norm"
    dims = [3, 1, 2, 5, 3, 1, 4, 6]
    with _seeded(607):
        cases = []
        for i, dim in enumerate(dims):
            bn = BatchNorm(dim, eps=0.05).double()
            _randomise(bn, 0.5)
            bn.running_mean.normal_()
            bn.running_var.copy_(torch.exp(torch.randn(dim, dtype=torch.float64)))
            bn.train(i % 2 == 0)
            x = torch.randn(16, dim, dtype=torch.float64) * 2 + 1
            mode = "training mode" if bn.training else "evaluation mode"
            cases.append((bn, x, f"D={dim}, {mode}"))
    for bn, x, case in cases:
        no_call = "do not call bn(x), it is the answer: compute z and log_det from its parameters"
        result = _call(name, fn, case, batch_norm, _forbid(bn, "forward", name, no_call), x.clone())
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            _fail(name, "batch_norm must return a pair (z, log_det)", case)
        z = _tensor(result[0], "z", tuple(x.shape), name, case)
        log_det = torch.as_tensor(result[1])
        if log_det.dim() == 0:
            _fail(
                name,
                "log_det is a single number; return one value per point, shape "
                "(batch,) (e.g. value.expand(x.shape[0]))",
                case,
            )
        log_det = _tensor(log_det, "log_det", (x.shape[0],), name, case)
        z_ref, log_det_ref = copy.deepcopy(bn)(x)
        _batch_norm_compare(name, bn, x, z, log_det, z_ref, log_det_ref, case)
        if not bn.training:
            alone = _call(name, fn, case, batch_norm, _forbid(bn, "forward", name, no_call), x[:1])
            if not _close(torch.as_tensor(alone[0]), z[:1]):
                _fail(
                    name,
                    "in evaluation mode a point's z depends on the other points of "
                    "its batch: use the fixed statistics bn.running_mean and "
                    "bn.running_var",
                    case,
                )
    _passed(name, len(cases))


def _batch_norm_variants(
    bn: BatchNorm, x: Tensor, m: Tensor, v: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    z = (x - m) / torch.sqrt(v + eps) * torch.exp(bn.log_gamma) + bn.beta
    return z, (bn.log_gamma.sum() - 0.5 * torch.log(v + eps).sum()).expand(x.shape[0])


def _batch_norm_compare(
    name: str,
    bn: BatchNorm,
    x: Tensor,
    z: Tensor,
    log_det: Tensor,
    z_ref: Tensor,
    log_det_ref: Tensor,
    case: str,
) -> None:
    batch_stats = (x.mean(0), x.var(0, unbiased=False))
    running = (bn.running_mean, bn.running_var)
    stats = batch_stats if bn.training else running
    other = running if bn.training else batch_stats
    wrong_stats = _batch_norm_variants(bn, x, *other, bn.eps)
    if bn.training:
        stats_msg = (
            "in training mode normalise with the batch's own mean and variance, not "
            "the running ones"
        )
    else:
        stats_msg = (
            "in evaluation mode use the fixed statistics bn.running_mean and "
            "bn.running_var, not the batch's: otherwise a point's density depends on "
            "the rest of its batch"
        )
    unbiased = _batch_norm_variants(bn, x, x.mean(0), x.var(0), bn.eps)
    no_eps = _batch_norm_variants(bn, x, *stats, 0.0)
    if not _close(z, z_ref):
        message = (
            _diagnose(
                z,
                z_ref,
                [
                    (wrong_stats[0], stats_msg),
                    (
                        unbiased[0] if bn.training else None,
                        "use the biased batch variance, x.var(0, unbiased=False), as "
                        "mafkit.BatchNorm does",
                    ),
                    (no_eps[0], "add bn.eps to the variance before the square root"),
                    (
                        (x - stats[0]) / torch.sqrt(stats[1] + bn.eps) * bn.log_gamma + bn.beta,
                        "the scale is exp(bn.log_gamma), not bn.log_gamma",
                    ),
                    (
                        (x - stats[0]) / torch.sqrt(stats[1] + bn.eps),
                        "z misses the learnt scale and shift: multiply by "
                        "exp(bn.log_gamma), add bn.beta",
                    ),
                ],
            )
            or "z is not exp(log_gamma) (x - m) / sqrt(v + eps) + beta"
        )
        _fail(name, message, case)
    if not _close(log_det, log_det_ref):
        m, v = stats
        lg, var_term = bn.log_gamma.sum().expand(len(x)), 0.5 * torch.log(v + bn.eps).sum()
        message = (
            _diagnose(
                log_det,
                log_det_ref,
                [
                    (wrong_stats[1], stats_msg),
                    (lg, "log_det misses the variance term -1/2 sum_i log(v_i + eps)"),
                    (-var_term.expand(len(x)), "log_det misses the term sum_i log_gamma_i"),
                    (
                        lg + var_term,
                        "the variance term has the wrong sign: dividing by sqrt(v + eps) "
                        "gives -1/2 sum_i log(v_i + eps)",
                    ),
                    (
                        lg - 2 * var_term,
                        "the variance term needs the factor 1/2: "
                        "log(1 / sqrt(v + eps)) = -1/2 log(v + eps)",
                    ),
                    (
                        -log_det_ref,
                        "log_det has the wrong sign: data to noise it is "
                        "sum log_gamma - 1/2 sum log(v + eps)",
                    ),
                    (
                        unbiased[1] if bn.training else None,
                        "use the biased batch variance, the same v " "that normalised z",
                    ),
                    (
                        no_eps[1],
                        "the variance in log_det needs + bn.eps too, the same v + eps as in z",
                    ),
                ],
            )
            or "log_det is not sum(log_gamma) - 1/2 sum(log(v + eps))"
        )
        _fail(name, message, case)
