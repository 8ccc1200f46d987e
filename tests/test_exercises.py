"""The exercise checkers: blank notebooks fail, solutions pass, typical wrong answers get a hint."""

from __future__ import annotations

import asyncio
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
NAMES = [
    "01_masks",
    "02_maf_inverse",
    "03_iaf_from_maf",
    "04_context_path",
    "05_temporal_step",
    "06_batchnorm_logdet",
]
CHECK = re.compile(r"^exercises\.check_\w+\(\w+\)$")


def read(name: str, solved: bool) -> nbformat.NotebookNode:
    folder = ROOT / "solutions" if solved else ROOT
    return nbformat.read(folder / f"{name}.ipynb", as_version=4)


def is_stub(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "raise NotImplementedError" in cell.source


def is_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(CHECK.match(cell.source.strip()))


def solution(name: str) -> dict:
    """The solution notebook's imports and answers, run in this process (fast)."""
    student, solved = read(name, False), read(name, True)
    namespace: dict = {}
    cells = [c for c in solved.cells if c.cell_type == "code"]
    exec(cells[0].source, namespace)  # imports and seed
    for mine, theirs in zip(student.cells, solved.cells):
        if is_stub(mine):
            exec(theirs.source, namespace)
    return namespace


# ---------------------------------------------------------------- the notebooks


@pytest.mark.parametrize("name", NAMES)
def test_student_and_solution_notebooks_differ_only_in_the_answers(name: str) -> None:
    student, solved = read(name, False), read(name, True)
    assert len(student.cells) == len(solved.cells)
    for k, (mine, theirs) in enumerate(zip(student.cells, solved.cells)):
        assert mine.cell_type == theirs.cell_type
        if k == 0:
            assert mine.source.replace("# Exercise:", "# Solution:", 1) == theirs.source
        elif not is_stub(mine):
            assert mine.source == theirs.source
    assert is_check(student.cells[-1]), "a student notebook ends with its check cell"
    assert any(is_stub(c) for c in student.cells)
    assert not any(is_stub(c) for c in solved.cells)


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
    assert lines and all(re.fullmatch(r"✓ [\w -]+: all \d+ cases passed", x) for x in lines)


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
        (dict(log_q="base_at_x"), "evaluate the base density at the noise u"),
        (dict(log_q="std_normal"), "this flow's base is not a standard normal"),
    ],
)
def test_iaf_checker_explains_a_typical_mistake(mistake: dict, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        exercises.check_iaf_from_maf(iaf_with(**mistake))


def test_iaf_checker_passes_a_correct_answer() -> None:
    exercises.check_iaf_from_maf(iaf_with())


# ---------------------------------------------------------------- 4. context path


def conditional_made_with(lowest=0, context="dense", output_ge=False, hidden_strict=False):
    class ConditionalMADE(nn.Module):
        def __init__(self, dim, width, context_dim, order):
            super().__init__()
            d_x = mafkit.input_degrees(order)
            d_h = mafkit.hidden_degrees(width, dim, lowest=lowest)
            mask = mafkit.output_mask(d_h, d_x) if hidden_strict else mafkit.hidden_mask(d_h, d_x)
            self.hidden = mafkit.MaskedLinear(mask)
            out = mafkit.hidden_mask if output_ge else mafkit.output_mask
            self.output = mafkit.MaskedLinear(out(d_x, d_h))
            if context == "masked":  # the context masked as if it had the top degree D
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
    with pytest.raises(AssertionError, match=r"do not call bn\(x\) or bn.statistics, they are the answer"):
        exercises.check_batch_norm(lambda bn, x: bn(x))


def test_batch_norm_checker_passes_a_correct_answer() -> None:
    exercises.check_batch_norm(batch_norm_with())
