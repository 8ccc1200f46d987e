"""fit: lowers the loss, stops early, restores the best weights, rejects bad arguments."""

import pytest
import torch

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
    ],
)
def test_fit_rejects_nonsense_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        fit(MAF(2, n_layers=1), torch.randn(10, 2), **kwargs)


def test_fit_reports_a_diverging_loss() -> None:
    flow = MAF(2, n_layers=1, hidden=(4,))
    with torch.no_grad():
        flow.transforms[0].made.rest[-1].bias.fill_(float("nan"))
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
