"""fit: lowers the loss, stops early, restores the best weights, rejects bad arguments."""

import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import mafkit
from mafkit import MAF, fit, mean_log_prob
from mafkit.data import two_moons


def test_fit_lowers_the_training_loss() -> None:
    flow = MAF(2, n_layers=2, hidden=(16,))
    history = fit(flow, two_moons(256), epochs=15, batch_size=64, lr=5e-3)
    assert history.train_loss[-1] < history.train_loss[0] - 0.3


def test_fit_restores_the_weights_of_the_best_validation_epoch() -> None:
    flow = MAF(2, n_layers=2, hidden=(16,))
    val = two_moons(128)
    history = fit(flow, two_moons(256), val, epochs=30, batch_size=64, lr=2e-2, patience=3)
    assert history.best_val_loss == min(history.val_loss)
    assert abs(-mean_log_prob(flow, val)[0] - history.best_val_loss) < 1e-5


def test_fit_stops_when_patience_runs_out() -> None:
    flow = MAF(2, n_layers=1, hidden=(4,))
    history = fit(flow, two_moons(64), two_moons(64), epochs=200, lr=1e-1, patience=2)
    assert history.stopped_early
    assert history.epochs_run == history.best_epoch + 3


def test_fit_passes_the_context() -> None:
    x = torch.randn(200, 2)
    c = x[:, :1] * 2
    flow = MAF(2, n_layers=1, hidden=(8,), context_dim=1)
    history = fit(flow, x, x, context=c, val_context=c, epochs=3)
    assert len(history.val_loss) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
        ({"lr": -1.0}, ValueError, "lr must be > 0"),
        ({"patience": 0}, ValueError, "patience must be >= 1"),
        ({"val_context": torch.zeros(3, 1)}, ValueError, "val_context was given without"),
        ({"context": torch.zeros(3, 1)}, ValueError, "must have 10 rows"),
        ({"schedule": "linear"}, ValueError, "schedule must be None or 'cosine'"),
        ({"clip_grad": 0.0}, ValueError, "clip_grad must be > 0 or None"),
    ],
)
def test_fit_rejects_nonsense_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        fit(MAF(2, n_layers=1), torch.randn(10, 2), **kwargs)


def test_fit_reports_a_diverging_loss() -> None:
    flow = MAF(2, n_layers=1, hidden=(4,))
    with torch.no_grad():
        flow.transforms[0].made.output_layer.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="smaller lr"):
        fit(flow, torch.randn(10, 2), epochs=1)


def test_mean_log_prob_returns_mean_and_standard_error() -> None:
    flow = MAF(2, n_layers=1)
    x = torch.randn(100, 2)
    mean, se = mean_log_prob(flow, x, batch_size=7)
    values = flow.log_prob(x)
    assert abs(mean - values.mean().item()) < 1e-5
    assert abs(se - (values.std() / 10).item()) < 1e-5


def test_fit_trains_on_the_data_that_resample_returns_each_epoch() -> None:
    draws = []

    def resample() -> torch.Tensor:
        draws.append(two_moons(64))
        return draws[-1]

    history = fit(MAF(2, n_layers=1, hidden=(4,)), two_moons(64), epochs=4, resample=resample)
    assert len(draws) == 3 and history.epochs_run == 4


def test_fit_rejects_a_resample_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="resample must return a tensor with 64 rows"):
        fit(MAF(2, n_layers=1), two_moons(64), epochs=2, resample=lambda: two_moons(10))


def test_the_cosine_schedule_lowers_the_learning_rate_along_a_half_cosine() -> None:
    history = fit(
        MAF(2, n_layers=1, hidden=(4,)), two_moons(64), epochs=8, lr=0.01, schedule="cosine"
    )
    expected = [0.01 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)]
    assert history.learning_rate == pytest.approx(expected, rel=1e-9)


def test_without_a_schedule_the_learning_rate_stays_constant() -> None:
    history = fit(MAF(2, n_layers=1, hidden=(4,)), two_moons(64), epochs=3, lr=0.01)
    assert history.learning_rate == [0.01] * 3


def test_the_schedule_changes_the_training() -> None:
    data = two_moons(128)
    results = []
    for schedule in (None, "cosine"):
        mafkit.set_seed(0)
        flow = MAF(2, n_layers=1, hidden=(8,))
        fit(flow, data, epochs=4, lr=0.01, schedule=schedule)
        results.append(flow.transforms[0].made.output_layer.weight.detach().clone())
    assert not torch.equal(*results)


class _Quadratic(torch.nn.Module):
    """log_prob(x) = -scale * |w - x|^2 / 2: its loss gradient has norm ~scale * |w - mean|."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))
        self.scale = scale

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.scale * (x - self.w).square().sum(dim=1)


def _gradient_norms_at_each_step(model, data, **kwargs) -> list[float]:
    norms = []

    def record(optimizer, args, kwargs) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item())

    handle = register_optimizer_step_pre_hook(record)
    try:
        fit(model, data, epochs=1, batch_size=len(data), **kwargs)
    finally:
        handle.remove()
    return norms


def test_fit_clips_the_gradient_norm_at_5_by_default() -> None:
    data = torch.full((4, 2), 3.0)  # the gradient of the loss has norm 1000 * 3 * sqrt(2)
    assert _gradient_norms_at_each_step(_Quadratic(1000.0), data) == pytest.approx([5.0])
    clipped = _gradient_norms_at_each_step(_Quadratic(1000.0), data, clip_grad=1.0)
    assert clipped == pytest.approx([1.0])
    raw = _gradient_norms_at_each_step(_Quadratic(1000.0), data, clip_grad=None)
    assert raw == pytest.approx([1000 * 3 * math.sqrt(2)])


def test_small_gradients_are_not_clipped() -> None:
    data = torch.full((4, 2), 3.0)
    assert _gradient_norms_at_each_step(_Quadratic(0.1), data) == pytest.approx(
        [0.1 * 3 * math.sqrt(2)]
    )
