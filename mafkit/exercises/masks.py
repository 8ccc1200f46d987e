"""Checkers of the MADE exercises: degrees and masks, and a MADE with a context path."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import masks as _masks_module
from ..made import MADE
from ..masks import hidden_mask, input_degrees, output_mask
from ._feedback import (
    _call,
    _fail,
    _forbidden,
    _keeps_random_state,
    _no_graph_message,
    _orders,
    _parts,
    _passed,
    _randomise,
    _seeded,
    _tensor,
    _unchanged,
    _uses_any,
)

__all__ = ["check_masks", "check_context_path"]


# ---------------------------------------------------------------- 1. masks


_MASK_HELPERS = ("input_degrees", "hidden_degrees", "hidden_mask", "output_mask")
_NO_HELPERS = (
    "do not use mafkit's mask helpers (mafkit.input_degrees, hidden_degrees, "
    "hidden_mask, output_mask) or mafkit.MADE: they are the answer; build the degrees and "
    "masks with torch"
)


def _helper_targets() -> list[tuple[object, str]]:
    import mafkit

    return [(module, n) for module in (_masks_module, mafkit) for n in _MASK_HELPERS] + [
        (mafkit, "MADE")
    ]


def _helper_objects() -> dict[str, object]:
    found: dict[str, object] = {n: getattr(_masks_module, n) for n in _MASK_HELPERS}
    found["MADE"] = MADE
    found["mafkit.masks"] = _masks_module
    return found


@_keeps_random_state
def check_masks(made_masks: Callable, part: str | None = None) -> None:
    """Check ``made_masks(order, hidden) -> (degrees, masks)``, a MADE with one output per variable.

    ``degrees`` is the list ``[input degrees (D,), degrees of hidden layer 1, ...]`` and
    ``masks`` the list ``[mask into hidden layer 1 (h1, D), ..., output mask (D, h_last)]``.
    Input degrees must be the 1-based positions in ``order``; hidden degrees lie in 1..D-1 and
    cover all of them (the widths are at least D-1); hidden masks connect where
    ``d_out >= d_in``, the output mask where ``d_out > d_in``; so output i depends on exactly the
    variables before i in the order.

    ``part`` limits the check to ``"degrees"`` or ``"masks"`` (the masks against the rules for
    the degrees the answer returned), for marking the two halves separately.
    """
    parts, name = _parts("masks", part, ("degrees", "masks"))
    fn = "made_masks"
    used = _uses_any(made_masks, _helper_objects())
    if used:
        _fail(name, f"your code uses {used}. {_NO_HELPERS}", "before any case")
    dims = [3, 1, 2, 4, 5, 3, 1, 4, 5, 8, 2, 8]
    with _seeded(101):
        orders = _orders(dims)
    for i, (dim, order) in enumerate(zip(dims, orders)):
        hidden = (max(dim - 1, 1) + i % 3,) if i % 2 == 0 else (dim + 2, max(dim - 1, 1))
        case = f"D={dim}, order={order.tolist()}, hidden={hidden}"
        given = order.clone()
        with _forbidden(name, _helper_targets(), _NO_HELPERS):
            result = _call(name, fn, case, made_masks, given, hidden)
        _unchanged(name, fn, "order", order, given, case)
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
        if "degrees" in parts:
            _check_degrees(name, dim, order, hidden, degrees, case)
        if "masks" not in parts:
            continue
        sizes = [dim, *hidden]
        degrees = [
            _tensor(d, f"degrees {k}", (sizes[k],), name, case).long()
            for k, d in enumerate(degrees)
        ]
        sizes = [dim, *hidden, dim]
        masks = [
            _tensor(m, f"mask {k + 1}", (sizes[k + 1], sizes[k]), name, case) != 0
            for k, m in enumerate(masks)
        ]
        _check_mask_rules(name, degrees, masks, case)
        if "degrees" in parts:
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


def _context_masked(model: nn.Module, width: int, context_dim: int) -> bool:
    """Whether the model holds a (width, context_dim) mask with zeros: a masked context."""
    for tensor in [*model.buffers(), *(m.mask for m in model.modules() if hasattr(m, "mask"))]:
        if isinstance(tensor, Tensor) and tuple(tensor.shape) == (width, context_dim):
            if bool((tensor == 0).any()):
                return True
    return False


@_keeps_random_state
def check_context_path(conditional_made: Callable, part: str | None = None) -> None:
    """Check ``ConditionalMADE(dim, width, context_dim, order)``: a MADE with a context path.

    Its ``forward(x, context)`` maps (batch, dim) and (batch, context_dim) to (batch, dim). With
    random weights, output i must depend on exactly the variables before i in the order, and on
    every component of the context (the first variable of the order included). ``part`` limits
    the check to ``"x"`` (the autoregressive structure in x) or ``"context"``.
    """
    parts, name = _parts("context path", part, ("x", "context"))
    cls = "ConditionalMADE"
    no_made = "do not use mafkit.MADE: it is the answer; build the layers yourself"
    used = _uses_any(conditional_made, {"mafkit.MADE": MADE})
    if used:
        _fail(name, f"your code uses {used}: {no_made}", "before any case")
    specs = [(3, 2), (1, 1), (1, 3), (2, 2), (3, 1), (4, 3), (5, 2), (2, 1), (4, 2), (6, 3)]
    with _seeded(404):
        orders = _orders([d for d, _ in specs])
        data = [(torch.randn(8, d), torch.randn(8, c)) for d, c in specs]
    import mafkit

    for (dim, context_dim), order, (x, context) in zip(specs, orders, data):
        width = 2 * dim + 2
        case = f"D={dim}, width={width}, context_dim={context_dim}, order={order.tolist()}"
        given = order.clone()
        with _seeded(403), _forbidden(name, [(mafkit, "MADE")], no_made):
            model = _call(name, cls, case, conditional_made, dim, width, context_dim, given)
        _unchanged(name, cls, "order", order, given, case)
        if not isinstance(model, nn.Module):
            _fail(name, f"{cls}(...) should build an nn.Module, got {type(model).__name__}", case)
        with _seeded(405):
            _randomise(model, 1.0)
        x_given, c_given = x.clone(), context.clone()
        out = _call(name, f"{cls}.forward", case, model, x_given, c_given)
        _unchanged(name, f"{cls}.forward", "x", x, x_given, case)
        _unchanged(name, f"{cls}.forward", "context", context, c_given, case)
        _tensor(out, "the output", (8, dim), name, case)
        if not out.requires_grad:
            _fail(name, _no_graph_message(f"{cls}.forward", "the output"), case)
        out, dep_x, dep_c = _call(name, f"{cls}.forward", case, _dependencies, model, x, context)
        if "x" in parts:
            _check_x_dependencies(name, dep_x, order, case)
        if "context" in parts:
            _check_context_dependencies(name, model, dep_c, order, width, context_dim, case)
        if "x" in parts:
            expected = MADE(dim, (width,), 1, context_dim, order).connectivity()
            if not torch.equal(dep_x, expected):  # implied by the checks above; kept as a guard
                _fail(name, "the outputs do not depend on x as mafkit.MADE's do", case)
    _passed(name, len(specs))


def _check_x_dependencies(name: str, dep_x: Tensor, order: Tensor, case: str) -> None:
    dim, degree = len(order), input_degrees(order)
    later = [
        (i, j) for i in range(dim) for j in range(dim) if dep_x[i, j] and degree[j] > degree[i]
    ]
    if later:
        i, j = later[0]
        _fail(
            name,
            f"output {i} depends on input {j}, which comes after it in the order: the "
            "hidden mask compares the wrong way round. Hidden unit k may see input j only "
            "where m(k) >= m(j): mafkit.hidden_mask(hidden_degrees, input_degrees), in that "
            "order of arguments",
            case,
        )
    for i in range(dim):
        if dep_x[i, i]:
            _fail(
                name,
                f"output {i} depends on input {i}: use a strict inequality "
                "(d_out > d_in) for the output mask",
                case,
            )
        for j in range(dim):
            if not dep_x[i, j] and degree[j] < degree[i]:
                _fail(
                    name,
                    f"output {i} ignores input {j}, which comes before it: let the "
                    "hidden degrees cycle through 0..D-1 so every degree is there",
                    case,
                )


def _check_context_dependencies(
    name: str,
    model: nn.Module,
    dep_c: Tensor,
    order: Tensor,
    width: int,
    context_dim: int,
    case: str,
) -> None:
    masked = _context_masked(model, width, context_dim)
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
        if masked:
            message = (
                f"output {first}, the first variable of the order, does not depend on the "
                "context, because the context path has a mask: units of degree 0 are cut "
                "off from it. The context needs no mask: use an ordinary "
                "nn.Linear(context_dim, width) so every hidden unit sees all of it"
            )
        else:
            message = (
                f"output {first}, the first variable of the order, does not depend on "
                "the context: its output only listens to hidden units of degree 0. Give "
                "some hidden units degree 0 (mafkit.hidden_degrees(width, dim, lowest=0))"
            )
        _fail(name, message, case)
    if not dep_c.all():
        i, c = (int(v) for v in torch.nonzero(~dep_c)[0])
        _fail(
            name,
            f"output {i} does not depend on context component {c}: every unit of "
            "the first hidden layer must see all of the context (no mask on it)",
            case,
        )
