"""TemporalMAF: a sequence density that is the sum of its one-step conditionals."""

import pytest
import torch
from torch import nn

import mafkit
from mafkit import TemporalMAF
from mafkit.checks import grid_2d

BOUNDS = ((-10.0, 10.0), (-10.0, 10.0))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _model(cell: str = "gru", dim: int = 2) -> TemporalMAF:
    """A small float64 model with random weights (far from the identity map)."""
    model = TemporalMAF(dim, hidden_size=6, n_layers=2, hidden=(12,), cell=cell, scale_bound=1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    return model.double()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("steps", [1, 4])
def test_log_prob_returns_one_value_per_sequence(cell: str, steps: int) -> None:
    x = torch.randn(3, steps, 2, dtype=torch.float64)
    assert _model(cell).log_prob(x).shape == (3,)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_log_prob_is_the_sum_of_conditionals_computed_one_step_at_a_time(cell: str) -> None:
    model = _model(cell)
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    total = torch.zeros(3, dtype=torch.float64)
    for t in range(5):
        if t == 0:
            context = model.initial_hidden.expand(3, -1)
        else:  # run the encoder from scratch on the prefix x_1..x_{t}
            outputs, _ = model.encoder(x[:, :t], model.initial_state(3))
            context = outputs[:, -1]
        total = total + model.flow.log_prob(x[:, t], context)
    assert torch.allclose(model.log_prob(x), total, atol=1e-10)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_step_does_not_depend_on_later_steps(cell: str) -> None:
    model = _model(cell)
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    changed = x.clone()
    changed[:, 3:] += 1.0
    before, after = model.step_log_prob(x), model.step_log_prob(changed)
    assert torch.allclose(before[:, :3], after[:, :3], atol=1e-12)
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_first_step_is_conditioned_on_the_learned_initial_state() -> None:
    model = _model()
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    model.step_log_prob(x)[:, 0].sum().backward()
    assert model.initial_hidden.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())


def test_one_step_density_given_a_history_integrates_to_one() -> None:
    model = _model()
    history = torch.randn(1, 3, 2, dtype=torch.float64)
    grid, area = grid_2d(BOUNDS, 300, dtype=torch.float64)
    seqs = torch.cat([history.expand(grid.shape[0], -1, -1), grid[:, None]], dim=1)
    with torch.no_grad():
        p = torch.exp(model.step_log_prob(seqs)[:, -1])
    assert abs((p.sum() * area).item() - 1.0) < 1e-3


@pytest.mark.parametrize("history_steps", [0, 3])
def test_forecast_samples_have_the_mean_of_the_one_step_density(history_steps: int) -> None:
    model = _model()
    history = torch.randn(1, history_steps, 2, dtype=torch.float64)
    grid, area = grid_2d(BOUNDS, 300, dtype=torch.float64)
    seqs = torch.cat([history.expand(grid.shape[0], -1, -1), grid[:, None]], dim=1)
    with torch.no_grad():
        p = torch.exp(model.step_log_prob(seqs)[:, -1]) * area
    mean_density = (p[:, None] * grid).sum(dim=0)
    draws = model.forecast(history, n_samples=20000)
    assert draws.shape == (20000, 1, 2)
    assert torch.allclose(draws[:, 0].mean(dim=0), mean_density, atol=0.05)


def test_sample_with_a_history_continues_like_forecast() -> None:
    model = _model()
    history = torch.randn(4, 3, 2, dtype=torch.float64)
    torch.manual_seed(1)
    sampled = model.sample(4, steps=1, history=history)
    torch.manual_seed(1)
    forecast = model.forecast(history, n_samples=1)
    assert torch.allclose(sampled[:, 0], forecast[0], atol=1e-12)


@pytest.mark.parametrize("history_shape", [None, (3, 2), (5, 3, 2)])
def test_sample_returns_n_trajectories_of_the_new_steps(history_shape: tuple | None) -> None:
    history = None if history_shape is None else torch.randn(*history_shape, dtype=torch.float64)
    x = _model().sample(5, steps=4, history=history)
    assert x.shape == (5, 4, 2) and x.dtype == torch.float64


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_model_and_its_samples_follow_dtype_conversion(cell: str) -> None:
    model = TemporalMAF(2, hidden_size=4, n_layers=1, hidden=(8,), cell=cell).double()
    assert model.sample(2, steps=3).dtype == torch.float64
    assert model.log_prob(torch.zeros(2, 3, 2, dtype=torch.float64)).dtype == torch.float64


def test_state_dict_round_trips() -> None:
    model, copy = _model("lstm"), _model("lstm")
    copy.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    assert torch.equal(model.log_prob(x), copy.log_prob(x))


def test_fit_lowers_the_nll_of_sequences() -> None:
    model = TemporalMAF(1, hidden_size=4, n_layers=1, hidden=(8,))
    x = torch.cumsum(0.3 * torch.randn(64, 6, 1), dim=1) + 2.0
    before = -model.log_prob(x).mean().item()
    history = mafkit.fit(model, x, epochs=10, batch_size=32, lr=1e-2)
    assert history.train_loss[-1] < before - 1.0


def test_a_batch_without_time_axis_raises() -> None:
    with pytest.raises(ValueError, match=r"x_seq must have shape \(batch, T, 2\), got \(4, 2\)"):
        _model().log_prob(torch.zeros(4, 2, dtype=torch.float64))


def test_sequences_of_the_wrong_dim_raise() -> None:
    with pytest.raises(ValueError, match=r"\(batch, T, 2\), got \(4, 5, 3\)"):
        _model().log_prob(torch.zeros(4, 5, 3, dtype=torch.float64))


def test_an_empty_sequence_raises() -> None:
    with pytest.raises(ValueError, match="at least one time step"):
        _model().log_prob(torch.zeros(4, 0, 2, dtype=torch.float64))


def test_a_dtype_mismatch_raises_a_type_error() -> None:
    with pytest.raises(TypeError, match="x_seq has dtype torch.float32 but the model's"):
        _model().log_prob(torch.zeros(4, 5, 2))


def test_non_finite_sequences_raise() -> None:
    x = torch.zeros(4, 5, 2, dtype=torch.float64)
    x[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _model().log_prob(x)


def test_a_history_for_the_wrong_number_of_trajectories_raises() -> None:
    with pytest.raises(ValueError, match=r"history must have shape \(t, 2\) or \(5, t, 2\)"):
        _model().sample(5, steps=2, history=torch.zeros(3, 4, 2, dtype=torch.float64))


def test_an_unknown_cell_raises() -> None:
    with pytest.raises(ValueError, match="cell must be 'gru' or 'lstm', got 'rnn'"):
        TemporalMAF(2, cell="rnn")


def test_a_non_tensor_sequence_raises_a_type_error() -> None:
    with pytest.raises(TypeError, match="x_seq must be a torch.Tensor, got list"):
        _model().log_prob([[[0.0, 0.0]]])


def test_encoder_is_a_recurrent_module() -> None:
    assert isinstance(_model("gru").encoder, nn.GRU)
    assert isinstance(_model("lstm").encoder, nn.LSTM)


def test_samples_and_forecasts_are_differentiable_like_flow_samples() -> None:
    model = _model()
    draws = model.sample(3, steps=2)
    forecast = model.forecast(torch.randn(2, 3, 2, dtype=torch.float64), n_samples=4)
    (draws.sum() + forecast.sum()).backward()
    assert model.flow.transforms[0].made.output_layer.weight.grad.abs().sum() > 0
    assert model.encoder.weight_hh_l0.grad.abs().sum() > 0
