"""Conditional MAF: context reaches every conditional, and p(x | c) is a proper density."""

import pytest
import torch
from torch import nn

from mafkit import MADE, MAF, MaskedAffineAutoregressive
from mafkit.checks import autoregressive_violations, grid_2d, integral_2d, jacobian, log_det_error

BOUNDS = ((-10.0, 10.0), (-10.0, 10.0))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _scramble(module: nn.Module, std: float = 0.4) -> nn.Module:
    """Give every parameter random values, so a fresh flow is far from the identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def _flow(dim: int = 2, context_dim: int = 3, **kwargs: object) -> MAF:
    flow = MAF(dim, n_layers=3, hidden=(16, 16), context_dim=context_dim, scale_bound=1.0, **kwargs)
    return _scramble(flow).double()


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("order", [None, "reversed"])
def test_layer_jacobian_in_x_is_triangular_with_a_context(dim: int, order: str | None) -> None:
    layer_order = None if order is None else list(range(dim))[::-1]
    layer = _scramble(MaskedAffineAutoregressive(dim, (16,), 3, layer_order)).double()
    x = torch.randn(3, dim, dtype=torch.float64)
    context = torch.randn(1, 3, dtype=torch.float64)
    jac = jacobian(lambda v: layer(v, context.expand(v.shape[0], -1))[0], x)
    off_diagonal = jac - torch.diag_embed(torch.diagonal(jac, dim1=1, dim2=2))
    assert not autoregressive_violations(off_diagonal, layer.order).any()


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_conditional_flow_log_det_matches_slogdet(dim: int) -> None:
    flow = _flow(dim)
    x = torch.randn(4, dim, dtype=torch.float64)
    context = torch.randn(4, 3, dtype=torch.float64)
    assert log_det_error(flow, x, context) < 1e-10


@pytest.mark.parametrize("c", [[-2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.5, -1.0, 0.5]])
def test_conditional_density_integrates_to_one_for_each_context(c: list[float]) -> None:
    flow = _flow(2)
    context = torch.tensor(c, dtype=torch.float64)
    total = integral_2d(
        lambda g: flow.log_prob(g.double(), context.expand(g.shape[0], -1)), BOUNDS, n=400
    )
    assert abs(total - 1.0) < 1e-3


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("order", [None, "reversed", "shuffled"])
def test_every_made_output_depends_on_the_context(dim: int, order: str | None) -> None:
    made_order = {
        None: None,
        "reversed": list(range(dim))[::-1],
        "shuffled": torch.randperm(dim).tolist(),
    }[order]
    made = MADE(dim, hidden=(8, 8), n_params=2, context_dim=3, order=made_order).double()
    # Several points: at a single point every ReLU on a path may happen to be off.
    x = torch.randn(16, dim, dtype=torch.float64)
    context = torch.randn(16, 3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda c: made(x, c), context)  # (16, dim, 2, 16, 3)
    reached = jac.abs().sum(dim=(0, 3, 4)) > 0
    assert reached.all(), f"outputs not reached by the context: {(~reached).nonzero().tolist()}"


def test_every_layer_output_of_a_conditional_maf_depends_on_the_context() -> None:
    flow = _flow(3)
    x = torch.randn(1, 3, dtype=torch.float64)
    context = torch.randn(1, 3, dtype=torch.float64)
    for layer in flow.transforms:
        jac = torch.autograd.functional.jacobian(lambda c, t=layer: t(x, c)[0][0], context)
        assert (jac.abs().sum(dim=(1, 2)) > 0).all()


def test_embedding_output_is_the_context_the_layers_see() -> None:
    embedding = nn.Sequential(nn.Linear(3, 5), nn.Tanh())
    flow = MAF(2, n_layers=2, hidden=(8,), context_dim=3, embedding=embedding).double()
    assert all(t.made.context_dim == 5 for t in flow.transforms)
    x = torch.randn(4, 2, dtype=torch.float64)
    context = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    flow.log_prob(x, context).sum().backward()
    assert embedding[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(3,), (6, 3)])
def test_sample_accepts_one_shared_context_or_one_per_row(shape: tuple[int, ...]) -> None:
    flow = _flow(2)
    x = flow.sample(6, torch.randn(*shape, dtype=torch.float64))
    assert x.shape == (6, 2) and x.dtype == torch.float64


def test_a_shared_context_samples_like_the_same_context_on_every_row() -> None:
    flow = _flow(2)
    c = torch.randn(3, dtype=torch.float64)
    torch.manual_seed(1)
    shared = flow.sample(5, c)
    torch.manual_seed(1)
    per_row = flow.sample(5, c.expand(5, -1))
    assert torch.equal(shared, per_row)


def test_sample_and_log_prob_agree_with_log_prob_of_the_samples() -> None:
    flow = _flow(2)
    c = torch.randn(3, dtype=torch.float64)
    x, log_p = flow.sample_and_log_prob(50, c)
    assert torch.allclose(log_p, flow.log_prob(x, c.expand(50, -1)), atol=1e-9)


@pytest.mark.parametrize("c", [[-1.0, 0.5, 2.0], [0.3, 0.3, -0.7]])
def test_sample_mean_matches_the_mean_of_the_density(c: list[float]) -> None:
    flow = _flow(2)
    context = torch.tensor(c, dtype=torch.float64)
    grid, area = grid_2d(BOUNDS, 400, dtype=torch.float64)
    with torch.no_grad():
        p = torch.exp(flow.log_prob(grid, context.expand(grid.shape[0], -1))) * area
        mean_density = (p[:, None] * grid).sum(dim=0)
        x = flow.sample(20000, context)
    assert torch.allclose(x.mean(dim=0), mean_density, atol=0.05)


def test_log_prob_without_context_in_a_conditional_flow_raises() -> None:
    with pytest.raises(ValueError, match=r"conditional \(context_dim=3\)"):
        _flow(2).log_prob(torch.zeros(4, 2, dtype=torch.float64))


def test_context_given_to_an_unconditional_flow_raises() -> None:
    flow = MAF(2, n_layers=1, hidden=(8,))
    with pytest.raises(ValueError, match="unconditional"):
        flow.log_prob(torch.zeros(4, 2), torch.zeros(4, 3))


def test_context_with_the_wrong_number_of_rows_raises() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*got \(5, 3\)"):
        _flow(2).log_prob(
            torch.zeros(4, 2, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64)
        )


def test_context_with_the_wrong_width_raises() -> None:
    with pytest.raises(ValueError, match=r"got \(4, 2\)"):
        _flow(2).log_prob(
            torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)
        )


def test_sample_with_a_wrong_shared_context_raises() -> None:
    with pytest.raises(ValueError, match=r"context must have shape \(3,\) or \(5, 3\)"):
        _flow(2).sample(5, torch.zeros(4, dtype=torch.float64))
