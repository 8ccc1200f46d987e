"""MADE: the autograd Jacobian is strictly triangular in the model's order; context reaches all."""

import io

import pytest
import torch

from mafkit import MADE, MaskedLinear
from mafkit.checks import autoregressive_violations, jacobian, missing_dependencies

ORDERS = {
    "natural": lambda d: None,
    "reversed": lambda d: list(range(d))[::-1],
    "shuffled": lambda d: torch.randperm(d).tolist(),
}


def _params_jacobian(made: MADE, x: torch.Tensor, context=None, param: int = 0) -> torch.Tensor:
    def fn(v: torch.Tensor) -> torch.Tensor:
        c = None if context is None else context[: v.shape[0]]
        return made(v, c)[:, :, param]

    return jacobian(fn, x)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("order_name", list(ORDERS))
@pytest.mark.parametrize("context_dim", [0, 3])
def test_made_output_depends_only_on_earlier_inputs(
    dim: int, order_name: str, context_dim: int
) -> None:
    made = MADE(
        dim, hidden=(16, 16), n_params=2, context_dim=context_dim, order=ORDERS[order_name](dim)
    ).double()
    x = torch.randn(4, dim, dtype=torch.float64)
    context = torch.randn(1, context_dim, dtype=torch.float64) if context_dim else None
    for param in range(2):
        jac = _params_jacobian(made, x, context, param)
        assert not autoregressive_violations(jac, made.order).any()


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("order_name", list(ORDERS))
@pytest.mark.parametrize("context_dim", [0, 3])
def test_made_output_depends_on_every_earlier_input(
    dim: int, order_name: str, context_dim: int
) -> None:
    # tanh has no dead units, so a zero derivative can only come from the masks.
    made = MADE(
        dim,
        hidden=(dim, dim),
        n_params=2,
        context_dim=context_dim,
        order=ORDERS[order_name](dim),
        activation=torch.nn.Tanh,
    ).double()
    x = torch.randn(2, dim, dtype=torch.float64)
    context = torch.randn(1, context_dim, dtype=torch.float64) if context_dim else None
    for param in range(2):
        jac = _params_jacobian(made, x, context, param)
        assert not missing_dependencies(jac, made.order).any()


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_context_reaches_every_conditional_including_the_first(dim: int) -> None:
    made = MADE(
        dim,
        hidden=(8,),
        n_params=2,
        context_dim=3,
        order=ORDERS["reversed"](dim),
        activation=torch.nn.Tanh,
    )
    x = torch.randn(1, dim)
    jac = torch.autograd.functional.jacobian(lambda c: made(x, c)[0], torch.randn(1, 3))
    dependence = jac.abs().sum(dim=(2, 3))  # (dim, n_params)
    assert (dependence > 0).all()


def test_output_has_shape_batch_dim_n_params() -> None:
    assert MADE(4, hidden=(8,), n_params=3)(torch.randn(7, 4)).shape == (7, 4, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dim": 0}, ValueError, "dim must be >= 1"),
        ({"dim": 2.0}, TypeError, "dim must be an int"),
        ({"dim": 3, "hidden": (8, 0)}, ValueError, "hidden width must be >= 1"),
        ({"dim": 3, "hidden": ()}, ValueError, "non-empty tuple"),
        ({"dim": 3, "n_params": 0}, ValueError, "n_params must be >= 1"),
        ({"dim": 3, "context_dim": -1}, ValueError, "context_dim must be >= 0"),
        ({"dim": 3, "order": [0, 1, 1]}, ValueError, "permutation"),
    ],
)
def test_nonsense_hyperparameters_are_rejected(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MADE(**kwargs)


def test_points_of_the_wrong_width_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\), got \(5, 4\)"):
        MADE(3)(torch.randn(5, 4))


def test_a_single_point_without_batch_dimension_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"shape \(batch, 3\), got \(3,\)"):
        MADE(3)(torch.randn(3))


def test_non_finite_points_are_rejected() -> None:
    x = torch.randn(2, 3)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        MADE(3)(x)


def test_integer_points_are_rejected() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        MADE(3)(torch.ones(2, 3, dtype=torch.long))


def test_a_missing_context_is_an_error() -> None:
    with pytest.raises(ValueError, match="conditional"):
        MADE(3, context_dim=2)(torch.randn(4, 3))


def test_an_unexpected_context_is_an_error() -> None:
    with pytest.raises(ValueError, match="unconditional"):
        MADE(3)(torch.randn(4, 3), torch.randn(4, 2))


def test_a_context_with_the_wrong_number_of_rows_is_not_broadcast() -> None:
    with pytest.raises(ValueError, match=r"match the 4 points, got \(1, 2\)"):
        MADE(3, context_dim=2)(torch.randn(4, 3), torch.randn(1, 2))


def test_masks_are_buffers_that_follow_dtype_and_round_trip_through_state_dict() -> None:
    made = MADE(3, hidden=(8,), context_dim=1).double()
    assert all(m.dtype == torch.float64 for m in made.masks())
    buffer = io.BytesIO()
    torch.save(made.state_dict(), buffer)
    buffer.seek(0)
    copy = MADE(3, hidden=(8,), context_dim=1).double()
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    x, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    assert torch.equal(made(x, c), copy(x, c))
    assert any(k.endswith("mask") for k in made.state_dict())


def test_layers_are_one_sequential_named_by_role() -> None:
    made = MADE(3, hidden=(8, 8, 8), context_dim=2)
    assert [name for name, _ in made.layers.named_children()] == [
        "input",
        "activation_1",
        "hidden_1",
        "activation_2",
        "hidden_2",
        "activation_3",
        "output",
    ]
    assert made.input_layer is made.layers.input and made.output_layer is made.layers.output
    assert made.context_layer.weight.shape == (8, 2)


def test_made_is_plain_masked_linear_algebra() -> None:
    made = MADE(3, hidden=(8, 6), n_params=2, context_dim=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    c = torch.randn(5, 2, dtype=torch.float64)
    linears = [m for m in made.layers if isinstance(m, MaskedLinear)]
    w = [m.weight * m.mask for m in linears]
    b = [m.bias for m in linears]
    h = torch.relu(x @ w[0].t() + b[0] + c @ made.context_layer.weight.t())
    h = torch.relu(h @ w[1].t() + b[1])
    expected = (h @ w[2].t() + b[2]).view(5, 3, 2)
    torch.testing.assert_close(made(x, c), expected)


@pytest.mark.parametrize("batch", [1, 1023, 1024, 4096])
@pytest.mark.parametrize("grad", [True, False])
def test_output_is_contiguous_and_row_independent_at_every_batch_size(
    batch: int, grad: bool
) -> None:
    made = MADE(5, hidden=(64, 64), n_params=2)
    x = torch.randn(batch, 5)
    with torch.set_grad_enabled(grad):
        params = made(x)
        first_alone = made(x[:1])
    assert params.is_contiguous()
    assert params.view(batch, -1).shape == (batch, 10)
    torch.testing.assert_close(params[:1], first_alone, rtol=1e-6, atol=1e-6)


def test_float32_and_float64_agree() -> None:
    made = MADE(4, hidden=(32,), context_dim=1)
    x, c = torch.randn(6, 4), torch.randn(6, 1)
    expected = made.double()(x.double(), c.double())
    torch.testing.assert_close(made.float()(x, c).double(), expected, rtol=1e-5, atol=1e-5)
