"""The exercise checkers: blank notebooks fail, solutions pass, typical wrong answers get a hint."""

from __future__ import annotations

import asyncio
import math
import pathlib
import re

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from torch import nn

import mafkit
from mafkit import exercises

ROOT = pathlib.Path(__file__).resolve().parents[1] / "exercises"
# The marker that opens every notebook's first cell (tools/install_cell.py).
INSTALL_MARKER = "# Install the course package mafkit where it is missing"
NAMES = sorted(p.stem for p in (ROOT / "source").glob("[0-9][0-9]_*.ipynb"))
CHECK = re.compile(r"^exercises\.check_\w+\(\w+\)$")


def read(name: str, solved: bool) -> nbformat.NotebookNode:
    """The handed-out notebook, or the source notebook with the solutions."""
    folder = ROOT / "source" if solved else ROOT
    return nbformat.read(folder / f"{name}.ipynb", as_version=4)


def is_stub(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "raise NotImplementedError" in cell.source


def is_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(CHECK.match(cell.source.strip()))


def solution(name: str) -> dict:
    """The source notebook's imports and answers, run in this process (fast)."""
    namespace: dict = {}
    cells = [c for c in read(name, True).cells if c.cell_type == "code"]
    # The first cell installs mafkit where it is missing (Colab); here it is installed.
    cells = [c for c in cells if not c.source.startswith(INSTALL_MARKER)]
    exec(cells[0].source, namespace)  # imports and seed
    for cell in cells:
        if "# BEGIN SOLUTION" in cell.source:
            exec(cell.source, namespace)
    return namespace


# ---------------------------------------------------------------- the notebooks


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_is_stored_without_outputs(name: str) -> None:
    for cell in read(name, False).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.fixture(scope="module")
def handed_out() -> dict[str, nbformat.NotebookNode]:
    """Every student notebook as handed out, executed (three kernels side by side, to save time)."""
    notebooks = {name: read(name, False) for name in NAMES}
    clients = [
        NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True)
        for nb in notebooks.values()
    ]

    async def run_all() -> None:
        slots = asyncio.Semaphore(3)  # three kernels at a time: about 0.9 GB at most

        async def run(client: NotebookClient) -> None:
            async with slots:
                await client.async_execute()

        await asyncio.gather(*(run(client) for client in clients))

    asyncio.run(run_all())
    return notebooks


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_as_handed_out_fails_its_check_with_a_friendly_message(
    name: str, handed_out: dict[str, nbformat.NotebookNode]
) -> None:
    for cell in handed_out[name].cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if is_check(cell):
            assert len(errors) == 1, cell.source
            assert errors[0].ename == "ExerciseError"
            assert "you have not written" in errors[0].evalue
            # Jupyter shows the message alone, without a traceback into mafkit.
            assert "Traceback" not in "\n".join(errors[0].traceback)
        else:
            assert errors == [], cell.source


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_its_check(name: str, capsys: pytest.CaptureFixture) -> None:
    namespace = solution(name)
    for cell in read(name, True).cells:
        if is_check(cell):
            exec(cell.source, namespace)
    lines = capsys.readouterr().out.splitlines()
    verdict = r"✓ [\w -]+: (all \d+ cases passed|normalised, and within 0.2 nats of mafkit's MAF)"
    assert lines and all(re.fullmatch(verdict, x) for x in lines)


def test_checker_leaves_the_callers_random_state_alone(capsys: pytest.CaptureFixture) -> None:
    state = torch.get_rng_state()
    exercises.check_maf_inverse(solution("02_maf_inverse")["maf_inverse"])
    assert torch.equal(state, torch.get_rng_state())


def test_stub_error_names_the_function_and_has_no_traceback() -> None:
    def made_masks(order, hidden):
        raise NotImplementedError

    with pytest.raises(AssertionError, match="you have not written `made_masks` yet") as info:
        exercises.check_masks(made_masks)
    assert info.value._render_traceback_()[0].startswith("✗ masks: you have not written")


def test_a_crash_in_student_code_is_reported_with_its_line() -> None:
    def made_masks(order, hidden):
        torch.randint(1, len(order), (hidden[0],))  # the seed's hidden degrees: fails for D = 1
        return masks_with()(order, hidden)

    with pytest.raises(AssertionError, match=r"raised RuntimeError(.|\n)*at line .*randint"):
        exercises.check_masks(made_masks)


# ---------------------------------------------------------------- 1. masks


def masks_with(
    input_shift=0,
    strict_hidden=False,
    output_ge=False,
    from_order=False,
    hidden_low=1,
    span_shift=0,
):
    """A made_masks with one typical mistake switched on."""

    def made_masks(order, hidden):
        dim = len(order)
        d_in = torch.empty_like(order)
        d_in[order] = torch.arange(1, dim + 1)
        if from_order:
            d_in = order + 1
        d_in = d_in + input_shift
        degrees = [d_in]
        for width in hidden:
            degrees.append(torch.arange(width) % max(dim - 1 + span_shift, 1) + hidden_low)
        masks = []
        for a, b in zip(degrees[:-1], degrees[1:]):
            masks.append(b[:, None] > a[None, :] if strict_hidden else b[:, None] >= a[None, :])
        last = d_in[:, None] >= degrees[-1] if output_ge else d_in[:, None] > degrees[-1]
        return degrees, masks + [last]

    return made_masks


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(input_shift=-1), "input degrees are off by one: they are 1-based"),
        (dict(from_order=True), r"degree order\[i\] \+ 1"),
        (dict(output_ge=True), r"output (\d) depends on input \1: use a strict inequality"),
        (dict(strict_hidden=True), "use >= for hidden masks"),
        (dict(hidden_low=0), "hidden degrees start at 1"),
        (dict(span_shift=1), "a unit of degree >= D = \\d can feed no output"),
        (dict(span_shift=-1), "has no unit of degree \\d"),
    ],
)
def test_masks_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_masks(masks_with(**mistake))


def test_masks_checker_passes_the_reference_degrees() -> None:
    exercises.check_masks(masks_with())


# ---------------------------------------------------------------- 2. MAF inverse


def inverse_with(passes=0, step="good", log_det="last", drop_context=False, by_index=False):
    def maf_inverse(layer, z, context=None):
        context = None if drop_context else context
        x, scales = torch.zeros_like(z), []
        for i in range(z.shape[1] + passes):
            shift, s = layer.shift_and_log_scale(x, context)
            if by_index:
                x[:, i] = shift[:, i] + torch.exp(s[:, i]) * z[:, i]
            elif step == "good":
                x = shift + torch.exp(s) * z
            elif step == "forward":
                x = (z - shift) * torch.exp(-s)
            else:
                x = shift + torch.exp(-s) * z
            scales.append(s.sum(1))
        chosen = {
            "last": scales[-1],
            "first": scales[0],
            "minus": -scales[-1],
            "all": sum(scales),
            "zero": 0 * scales[-1],
            "unsummed": s,
        }[log_det]
        return x, chosen

    return maf_inverse


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(log_det="minus"), "log_det has the wrong sign"),
        (dict(log_det="zero"), "log_det is zero"),
        (dict(log_det="first"), "log-scales of the first pass"),
        (dict(log_det="all"), "log-scales of every pass"),
        (dict(log_det="unsummed"), r"shape \(batch, D\): sum the log-scales"),
        (dict(passes=-1), "the last variable of the order is wrong: you need D passes"),
        (dict(step="forward"), "data-to-noise formula"),
        (dict(step="exp_minus"), r"not exp\(-alpha\)"),
        (dict(by_index=True), "built in the index order 0..D-1"),
        (dict(drop_context=True), "x ignores the context"),
    ],
)
def test_maf_inverse_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_maf_inverse(inverse_with(**mistake))


def test_maf_inverse_checker_spots_a_single_pass() -> None:
    def maf_inverse(layer, z, context=None):
        shift, log_scale = layer.shift_and_log_scale(torch.zeros_like(z), context)
        return shift + torch.exp(log_scale) * z, log_scale.sum(1)

    with pytest.raises(AssertionError, match="one MADE pass is not enough"):
        exercises.check_maf_inverse(maf_inverse)


def test_maf_inverse_checker_refuses_layer_inverse() -> None:
    def maf_inverse(layer, z, context=None):
        return layer.inverse(z, context)

    with pytest.raises(AssertionError, match="do not call layer.inverse, it is the answer"):
        exercises.check_maf_inverse(maf_inverse)


def test_maf_inverse_checker_hints_at_dtype_errors() -> None:
    def maf_inverse(layer, z, context=None):
        x = torch.zeros(z.shape)  # float32 while the layer is float64
        for _ in range(z.shape[1]):
            shift, log_scale = layer.shift_and_log_scale(x, context)
            x = shift + torch.exp(log_scale) * z
        return x, log_scale.sum(1)

    with pytest.raises(AssertionError, match="hint: the checker works in float64"):
        exercises.check_maf_inverse(maf_inverse)


# ---------------------------------------------------------------- 3. IAF from MAF


def iaf_with(direction="forward", layers="first_to_last", log_q="good"):
    def iaf_sample(maf, u):
        stack = list(maf.transforms)
        if layers == "last_to_first":
            stack = stack[::-1]
        if direction == "inverse":  # MAF sampling, layer by layer: last layer first
            stack = stack[::-1]
        x, lds = u, []
        for t in stack:
            x, ld = t(x) if direction == "forward" else t.inverse(x)
            lds.append(ld)
        total, base = sum(lds), maf.base.log_prob(u)
        std_normal = torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(1)
        value = {
            "good": lambda: base - total,
            "plus": lambda: base + total,
            "no_det": lambda: base,
            "no_base": lambda: -total,
            "last_only": lambda: base - lds[-1],
            "maf_density": lambda: maf.log_prob(x),
            "base_at_x": lambda: maf.base.log_prob(x) - total,
            "std_normal": lambda: std_normal - total,
            "detached": lambda: (base - total).detach(),
        }
        return x, value[log_q]()

    return iaf_sample


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(direction="inverse"), "you ran the layers' inverse, which is MAF sampling"),
        (dict(layers="last_to_first"), "the layers run last to first"),
        (dict(log_q="plus"), "the log-det term has the wrong sign"),
        (dict(log_q="no_det"), "the log-det term is missing"),
        (dict(log_q="no_base"), "the base density is missing"),
        (dict(log_q="last_only"), "only the last layer's log-det"),
        (dict(log_q="maf_density"), "do not use maf.inverse, maf.log_prob or mafkit.IAF"),
        (dict(log_q="detached"), "log_q carries no gradient"),
        (dict(log_q="base_at_x"), "evaluate the base density at the noise z"),
        (dict(log_q="std_normal"), "this flow's base is not a standard normal"),
    ],
)
def test_iaf_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_iaf_from_maf(iaf_with(**mistake))


def test_iaf_checker_passes_a_correct_answer() -> None:
    exercises.check_iaf_from_maf(iaf_with())


# ---------------------------------------------------------------- 4. context path


def conditional_made_with(
    lowest=0, context="dense", output_ge=False, hidden_strict=False, swapped=False
):
    class ConditionalMADE(nn.Module):
        def __init__(self, dim, width, context_dim, order):
            super().__init__()
            d_x = mafkit.input_degrees(order)
            d_h = mafkit.hidden_degrees(width, dim, lowest=lowest)
            mask = mafkit.output_mask(d_h, d_x) if hidden_strict else mafkit.hidden_mask(d_h, d_x)
            self.hidden = mafkit.MaskedLinear(mask)
            out = mafkit.hidden_mask if output_ge else mafkit.output_mask
            self.output = mafkit.MaskedLinear(out(d_x, d_h))
            if swapped:  # hidden_mask(input degrees, hidden degrees), transposed to fit
                self.hidden = mafkit.MaskedLinear(mafkit.hidden_mask(d_x, d_h).T)
            if context == "degree1":  # the context masked as if it had degree 1
                self.context = mafkit.MaskedLinear(
                    mafkit.hidden_mask(d_h, torch.ones(context_dim, dtype=torch.long))
                )
            elif context == "masked":  # the context masked as if it had the top degree D
                self.context = mafkit.MaskedLinear(
                    mafkit.hidden_mask(d_h, torch.full((context_dim,), dim))
                )
            else:
                self.context = nn.Linear(context_dim, width)
            self.use_context = context != "ignored"

        def forward(self, x, c):
            h = self.hidden(x) + (self.context(c) if self.use_context else 0)
            return self.output(torch.relu(h))

    return ConditionalMADE


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(lowest=1), "the first variable of the order, does not depend on the context"),
        (dict(context="ignored"), "no output depends on the context"),
        (dict(context="masked"), "no output depends on the context: it is ignored or masked"),
        (dict(output_ge=True), r"output (\d) depends on input \1: use a strict inequality"),
        (dict(hidden_strict=True), r"ignores input \d, which comes before it"),
        (dict(swapped=True), "the hidden mask compares the wrong way round"),
        (dict(context="degree1"), "because the context path has a mask"),
    ],
)
def test_context_path_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_context_path(conditional_made_with(**mistake))


def test_context_path_checker_spots_a_partly_masked_context() -> None:
    class HalfContext(conditional_made_with()):
        def forward(self, x, c):
            return super().forward(x, c * torch.tensor([1.0] + [0.0] * (c.shape[1] - 1)))

    with pytest.raises(AssertionError, match="does not depend on context component 1"):
        exercises.check_context_path(HalfContext)


# ---------------------------------------------------------------- 5. temporal step


def step_with(mistake=None):
    def step_log_prob(model, state, x_t):
        after = model.advance(state, x_t)
        context = model.context(after if mistake == "leak" else state)
        if mistake == "zeros":
            context = torch.zeros_like(context)
        if mistake == "restart":
            context = model.context(model.initial_state(x_t.shape[0]))
        log_p = model.flow.log_prob(x_t, context)
        return (-log_p if mistake == "nll" else log_p), (state if mistake == "stuck" else after)

    return step_log_prob


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("leak", "you fed x_t to the encoder before scoring it"),
        ("zeros", "the context is all zeros"),
        ("restart", "scored with the initial state's context"),
        ("nll", "log_p has the wrong sign"),
        ("stuck", "new_state is the state you were given"),
    ],
)
def test_temporal_checker_explains_a_typical_mistake(mistake: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_temporal_step(step_with(mistake))


def test_temporal_checker_passes_a_correct_answer() -> None:
    exercises.check_temporal_step(step_with())


# ---------------------------------------------------------------- 6. log-dets and batch norm


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda j: torch.diagonal(j, dim1=1, dim2=2).log().sum(1), "NaN: .* absolute value"),
        (lambda j: torch.diagonal(j, dim1=1, dim2=2).sum(1), "you summed the diagonal entries"),
        (lambda j: torch.diagonal(j, dim1=1, dim2=2).abs().prod(1), r"returned \|det J\|"),
        (lambda j: torch.diagonal(j, dim1=1, dim2=2).abs().log().mean(1), "averaged"),
        (lambda j: j.abs().log().sum((1, 2)), "not sum_i log|J_ii|"),
    ],
)
def test_triangular_checker_explains_a_typical_mistake(answer, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_triangular_log_det(answer)


def batch_norm_with(stats="right", var="biased", eps=True, log_det="right", scalar=False):
    def batch_norm(bn, x):
        use_batch = {"right": bn.training, "batch": True, "running": False}[stats]
        if use_batch:
            mean, v = x.mean(0), x.var(0, unbiased=var == "unbiased")
        else:
            mean, v = bn.running_mean, bn.running_var
        v = v + (bn.eps if eps else 0.0)
        z = torch.exp(bn.log_gamma) * (x - mean) / torch.sqrt(v) + bn.beta
        value = {
            "right": bn.log_gamma.sum() - 0.5 * v.log().sum(),
            "no_var": bn.log_gamma.sum(),
            "no_gamma": -0.5 * v.log().sum(),
            "plus_var": bn.log_gamma.sum() + 0.5 * v.log().sum(),
            "no_half": bn.log_gamma.sum() - v.log().sum(),
        }[log_det]
        return z, (value if scalar else value.expand(x.shape[0]))

    return batch_norm


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(stats="batch"), "in evaluation mode use the fixed statistics"),
        (dict(stats="running"), "in training mode normalise with the batch's own"),
        (dict(log_det="no_var"), "log_det misses the variance term"),
        (dict(log_det="no_gamma"), "log_det misses the term sum_i log_gamma_i"),
        (dict(log_det="plus_var"), "the variance term has the wrong sign"),
        (dict(log_det="no_half"), "needs the factor 1/2"),
        (dict(var="unbiased"), "use the biased batch variance"),
        (dict(eps=False), r"add bn.eps to the variance"),
        (dict(scalar=True), "log_det is a single number"),
    ],
)
def test_batch_norm_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_batch_norm(batch_norm_with(**mistake))


def test_batch_norm_checker_refuses_calling_the_layer() -> None:
    with pytest.raises(
        AssertionError, match=r"do not call bn\(x\) or bn.statistics, they are the answer"
    ):
        exercises.check_batch_norm(lambda bn, x: bn(x))


def test_batch_norm_checker_passes_a_correct_answer() -> None:
    exercises.check_batch_norm(batch_norm_with())


# ---------------------------------------------------------------- every checker: the guards


def answers() -> dict:
    """Each checker with the source notebook's right answer (not the slow two-moons fit)."""
    found = {}
    for name in NAMES:
        namespace = solution(name)
        for cell in read(name, True).cells:
            if is_check(cell) and "two_moons" not in cell.source:
                checker, answer = re.match(r"exercises\.(\w+)\((\w+)\)", cell.source).groups()
                found[checker] = namespace[answer]
    return found


@pytest.fixture(scope="module")
def right_answers() -> dict:
    return answers()


def test_every_checker_has_a_right_answer(right_answers: dict) -> None:
    assert len(right_answers) >= 12


def test_no_checker_changes_any_random_state(right_answers: dict, capsys) -> None:
    import random

    import numpy

    for checker, answer in right_answers.items():
        torch.manual_seed(1), random.seed(1), numpy.random.seed(1)
        getattr(exercises, checker)(answer)
        after = (torch.rand(1).item(), random.random(), numpy.random.rand())
        torch.manual_seed(1), random.seed(1), numpy.random.seed(1)
        before = (torch.rand(1).item(), random.random(), numpy.random.rand())
        assert after == before, checker


def test_context_path_checker_keeps_the_random_state_of_a_model_that_draws() -> None:
    state = torch.get_rng_state()
    exercises.check_context_path(conditional_made_with())  # its nn.Linear draws weights
    assert torch.equal(state, torch.get_rng_state())


def in_place(answer, argument: int):
    """The right answer, which then overwrites one of its tensor arguments in place."""

    def wrong(*args):
        result = answer(*args)
        with torch.no_grad():
            args[argument].mul_(0.5)
        return result

    return wrong


@pytest.mark.parametrize(
    ("checker", "argument", "message"),
    [
        ("check_masks", 0, "changed its input `order` in place"),
        ("check_maf_inverse", 1, "changed its input `z` in place"),
        ("check_iaf_from_maf", 1, "changed its input `z` in place"),
        ("check_triangular_log_det", 0, "changed its input `jac` in place"),
        ("check_batch_norm", 1, "changed its input `x` in place"),
        ("check_temporal_step", 2, "changed its input `x_t` in place"),
        ("check_mog_log_prob", 1, "changed its input `x` in place"),
    ],
)
def test_checkers_notice_an_input_changed_in_place(
    right_answers: dict, checker: str, argument: int, message: str
) -> None:
    answer = right_answers[checker]
    if checker == "check_masks":

        def answer_then_scramble(order, hidden):
            result = answer(order, hidden)
            order.copy_(order.flip(0))
            return result

        wrong = answer_then_scramble
    else:
        wrong = in_place(answer, argument)
    with pytest.raises(AssertionError, match=message):
        getattr(exercises, checker)(wrong)


def under_no_grad(answer):
    def wrong(*args):
        with torch.no_grad():
            return answer(*args)

    return wrong


@pytest.mark.parametrize(
    ("checker", "message"),
    [
        ("check_maf_inverse", "x carries no gradient"),
        ("check_iaf_from_maf", "x carries no gradient"),
        ("check_triangular_log_det", "the log-det carries no gradient"),
        ("check_batch_norm", "z carries no gradient"),
        ("check_temporal_step", "log_p carries no gradient"),
        ("check_mog_log_prob", "the log-density carries no gradient"),
    ],
)
def test_checkers_notice_an_answer_computed_without_gradients(
    right_answers: dict, checker: str, message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        getattr(exercises, checker)(under_no_grad(right_answers[checker]))


def test_batch_norm_checker_notices_detached_statistics() -> None:
    def batch_norm(bn, x):
        if not bn.training:
            return batch_norm_with()(bn, x)
        mean, var = x.mean(0).detach(), x.var(0, unbiased=False).detach()
        z = torch.exp(bn.log_gamma) * (x - mean) / torch.sqrt(var + bn.eps) + bn.beta
        log_det = bn.log_gamma.sum() - 0.5 * torch.log(var + bn.eps).sum()
        return z, log_det.expand(x.shape[0])

    with pytest.raises(AssertionError, match="must stay in the graph"):
        exercises.check_batch_norm(batch_norm)


# ---------------------------------------------------------------- the LSTM state


def test_temporal_checker_notices_a_dropped_cell_state() -> None:
    def step_log_prob(model, state, x_t):
        log_p, new = step_with()(model, state, x_t)
        if isinstance(new, tuple):
            new = (new[0], torch.zeros_like(new[1]))
        return log_p, new

    with pytest.raises(AssertionError, match="the wrong cell state c"):
        exercises.check_temporal_step(step_log_prob)


def test_temporal_checker_notices_an_lstm_state_cut_to_h() -> None:
    def step_log_prob(model, state, x_t):
        log_p, new = step_with()(model, state, x_t)
        return log_p, new[0] if isinstance(new, tuple) else new

    with pytest.raises(AssertionError, match="an LSTM's state is the pair"):
        exercises.check_temporal_step(step_log_prob)


def test_temporal_checker_feeds_the_answers_own_state_to_the_next_step(capsys) -> None:
    class Tagged(tuple):
        pass

    received = []

    def step_log_prob(model, state, x_t):
        received.append(type(state))
        log_p, new = step_with()(model, state, x_t)
        return log_p, Tagged(new) if isinstance(new, tuple) else new

    exercises.check_temporal_step(step_log_prob)
    assert Tagged in received


# ---------------------------------------------------------------- forbidden shortcuts


def test_masks_checker_refuses_mafkits_mask_helpers() -> None:
    def made_masks(order, hidden):
        d_in = mafkit.input_degrees(order)
        degrees = [d_in] + [mafkit.hidden_degrees(w, len(order)) for w in hidden]
        masks = [mafkit.hidden_mask(b, a) for a, b in zip(degrees, degrees[1:])]
        return degrees, masks + [mafkit.output_mask(d_in, degrees[-1])]

    with pytest.raises(AssertionError, match="do not use mafkit's mask helpers"):
        exercises.check_masks(made_masks)


def test_masks_checker_refuses_helpers_imported_by_name() -> None:
    from mafkit.masks import hidden_mask

    def made_masks(order, hidden):
        return masks_with()(order, hidden), hidden_mask

    with pytest.raises(AssertionError, match="your code uses hidden_mask"):
        exercises.check_masks(made_masks)


def test_iaf_checker_refuses_iaf_from_maf() -> None:
    def iaf_sample(maf, u):
        return mafkit.IAF.from_maf(maf).sample_and_log_prob(u)

    with pytest.raises(AssertionError, match="do not use maf.inverse, maf.log_prob or mafkit.IAF"):
        exercises.check_iaf_from_maf(iaf_sample)


def test_triangular_checker_refuses_slogdet() -> None:
    with pytest.raises(AssertionError, match="do not call a determinant routine"):
        exercises.check_triangular_log_det(lambda jac: torch.linalg.slogdet(jac)[1])
    with pytest.raises(AssertionError, match="do not call a determinant routine"):
        exercises.check_triangular_log_det(lambda jac: jac.det().abs().log())


def test_batch_norm_checker_refuses_the_layers_statistics() -> None:
    def batch_norm(bn, x):
        mean, var = bn.statistics(x)
        z = torch.exp(bn.log_gamma) * (x - mean) / torch.sqrt(var + bn.eps) + bn.beta
        return z, (bn.log_gamma.sum() - 0.5 * torch.log(var + bn.eps).sum()).expand(len(x))

    with pytest.raises(AssertionError, match="do not call bn\\(x\\) or bn.statistics"):
        exercises.check_batch_norm(batch_norm)


def test_context_path_checker_refuses_made() -> None:
    class ConditionalMADE(nn.Module):
        def __init__(self, dim, width, context_dim, order):
            super().__init__()
            self.made = mafkit.MADE(dim, (width,), 1, context_dim, order)

        def forward(self, x, context):
            return self.made(x, context)[..., 0]

    with pytest.raises(AssertionError, match="do not use mafkit.MADE"):
        exercises.check_context_path(ConditionalMADE)


def test_the_refusals_are_lifted_after_a_check() -> None:
    with pytest.raises(AssertionError):
        exercises.check_triangular_log_det(lambda jac: torch.linalg.slogdet(jac)[1])
    assert torch.linalg.slogdet(torch.eye(2))[1] == 0
    assert torch.eye(2).det() == 1
    assert mafkit.IAF.from_maf(mafkit.MAF(2, 1, (4,))) is not None


# ---------------------------------------------------------------- 7. a MAF layer from scratch


def maf_layer_with(mistake=None):
    namespace = solution("07_maf_from_scratch")
    base = namespace["MAFLayer"]

    class MAFLayer(base):
        def __init__(self, dim, hidden, order):
            super().__init__(dim, hidden, order)
            if mistake == "output_ge":  # the output mask with >=: x_i in its own condition
                degree_x = mafkit.input_degrees(torch.as_tensor(order))
                last = getattr(self, f"mask{len(hidden)}")
                width = last.shape[1]
                degrees_h = torch.arange(width) % max(dim - 1, 1) + 1
                out = (degree_x[:, None] >= degrees_h[None, :]).float()
                last.copy_(torch.cat([out, out]))

        def forward(self, x):
            z, log_det = super().forward(x)
            return z, (-log_det if mistake == "forward_sign" else log_det)

        def inverse(self, z):
            if mistake == "one_pass":
                shift, log_scale = self.shift_and_log_scale(torch.zeros_like(z))
                return shift + torch.exp(log_scale) * z, log_scale.sum(1)
            x, log_det = super().inverse(z)
            return x, (-log_det if mistake == "inverse_sign" else log_det)

    return MAFLayer


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("output_ge", r"z_(\d) is not affine in x_\1"),
        ("forward_sign", "the forward log_det has the wrong sign"),
        ("inverse_sign", "the inverse's log_det has the sign of the forward one"),
        ("one_pass", r"inverse\(forward\(x\)\) does not give back x"),
    ],
)
def test_maf_layer_checker_explains_a_typical_mistake(mistake: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_maf_layer(maf_layer_with(mistake))


def test_maf_layer_checker_refuses_mafkits_layer() -> None:
    def maf_layer(dim, hidden, order):
        return mafkit.MaskedAffineAutoregressive(dim, hidden, order=order)

    with pytest.raises(AssertionError, match="built from mafkit's .*MaskedAffineAutoregressive"):
        exercises.check_maf_layer(maf_layer)


def test_two_moons_checker_refuses_mafkits_maf() -> None:
    with pytest.raises(AssertionError, match="your flow contains mafkit's"):
        exercises.check_two_moons_fit(lambda data: mafkit.MAF(2, 5, (32,)))


def test_two_moons_checker_spots_a_density_without_log_det() -> None:
    namespace = solution("07_maf_from_scratch")

    class NoLogDet(namespace["MyFlow"]):
        def log_prob(self, x):
            for layer in self.layers:
                x, _ = layer(x)
            return -0.5 * x.square().sum(1) - math.log(2 * math.pi)

    def train_on_moons(data):
        with torch.no_grad():
            layers = [namespace["MAFLayer"](2, (8,), [0, 1]) for _ in range(2)]
            for layer in layers:
                layer.linears[-1].weight.normal_(0, 1.0)
        return NoLogDet(layers)

    with pytest.raises(AssertionError, match="integrates to .* not 1"):
        exercises.check_two_moons_fit(train_on_moons)


def test_two_moons_checker_spots_an_undertrained_flow() -> None:
    namespace = solution("07_maf_from_scratch")

    def train_on_moons(data):
        return namespace["MyFlow"]([namespace["MAFLayer"](2, (8,), [0, 1])])

    with pytest.raises(AssertionError, match="nats, more than 0.2 below"):
        exercises.check_two_moons_fit(train_on_moons)


# ---------------------------------------------------------------- 8. MADE MoG


def mog_with(mistake):
    def mog_log_prob(params, x, c):
        logits, means, log_stds = params.split(c, dim=2)
        if mistake == "layout":
            logits, means, log_stds = params.unflatten(2, (c, 3)).unbind(3)
        log_w = logits if mistake == "unnormalised" else torch.log_softmax(logits, 2)
        std = log_stds if mistake == "std_is_log" else torch.exp(log_stds)
        log_n = -0.5 * ((x[:, :, None] - means) / std).square() - 0.5 * math.log(2 * math.pi)
        if mistake != "no_log_sigma":
            log_n = log_n - (std.abs().log() if mistake == "std_is_log" else log_stds)
        if mistake == "naive":
            return torch.log(torch.exp(log_w + log_n).sum(2)).sum(1)
        if mistake == "axis":
            return torch.logsumexp(log_w + log_n, dim=1).sum(1)
        per_variable = torch.logsumexp(log_w + log_n, dim=2)
        return per_variable.mean(1) if mistake == "mean" else per_variable.sum(1)

    return mog_log_prob


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("unnormalised", "the mixture weights are not normalised"),
        ("no_log_sigma", r"misses its normaliser -log\(sigma\)"),
        ("std_is_log", r"the standard deviation is exp\(log_std\)"),
        ("axis", "the log-sum-exp runs over the variables"),
        ("mean", "you averaged the D conditionals"),
        ("layout", "the parameters are split the wrong way"),
        ("naive", "use torch.logsumexp"),
    ],
)
def test_mog_checker_explains_a_typical_mistake(mistake: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_mog_log_prob(mog_with(mistake))


def test_made_mog_checker_explains_a_typical_mistake() -> None:
    namespace = solution("08_made_mog")

    class TooFew(nn.Module):
        def __init__(self, dim, c, hidden, order):
            super().__init__()
            self.made = mafkit.MADE(dim, hidden=hidden, n_params=2 * c, order=order)

    with pytest.raises(AssertionError, match="needs 3C"):
        exercises.check_made_mog(TooFew)

    class Detached(namespace["MADEMoGDensity"]):
        def log_prob(self, x):
            return namespace["mog_log_prob"](self.made(x).detach(), x, self.n_components)

    with pytest.raises(AssertionError, match="log_prob carries no gradient"):
        exercises.check_made_mog(Detached)


# ---------------------------------------------------------------- 9. coupling layer


@pytest.mark.parametrize(
    ("degrees", "message"),
    [
        (lambda d, s, w: (torch.arange(1, d + 1), torch.ones(w)), "a MAF layer's degrees"),
        (lambda d, s, w: (torch.tensor([2] * s + [1] * (d - s)), torch.ones(w)), "swapped"),
        (lambda d, s, w: (torch.tensor([0] * s + [1] * (d - s)), torch.ones(w)), "off by one"),
        (lambda d, s, w: (torch.tensor([1] * s + [2] * (d - s)), torch.zeros(w)), "degree 0"),
        (
            lambda d, s, w: (torch.tensor([1] * s + [2] * (d - s)), torch.arange(w) % 2 + 1),
            "a hidden unit of degree 2",
        ),
    ],
)
def test_coupling_degrees_checker_explains_a_typical_mistake(degrees, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_coupling_degrees(degrees)


def coupling_with(mistake):
    namespace = solution("09_coupling_layer")
    base = namespace["CouplingLayer"]

    class CouplingLayer(base):
        def __init__(self, dim, split, hidden):
            super().__init__(dim, split, hidden)
            if mistake == "output_ge":  # the first block sees hidden units of degree 1
                out = self.net[-1]
                d_x = torch.tensor([1] * split + [2] * (dim - split))
                mask = mafkit.hidden_mask(d_x, torch.ones(out.mask.shape[1], dtype=torch.long))
                out.mask.copy_(torch.cat([mask, mask]))

        def forward(self, x):
            z, log_det = super().forward(x)
            return z, (-log_det if mistake == "sign" else log_det)

        def inverse(self, z):
            if mistake == "one_pass":
                shift, log_scale = self.shift_and_log_scale(torch.zeros_like(z))
                return shift + torch.exp(log_scale) * z, log_scale.sum(1)
            return super().inverse(z)

    return CouplingLayer


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("output_ge", r"z_(\d) is not affine in x_\1"),
        ("sign", "the forward log_det has the wrong sign"),
        ("one_pass", "in the second block"),
    ],
)
def test_coupling_layer_checker_explains_a_typical_mistake(mistake: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_coupling_layer(coupling_with(mistake))
