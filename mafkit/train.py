"""Maximum-likelihood training with early stopping: :func:`fit` and its :class:`History`."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._validation import check_positive_int
from .transforms import BatchNorm

__all__ = ["History", "fit", "mean_log_prob"]


@dataclass
class History:
    """What :func:`fit` did.

    Attributes:
        train_loss: mean negative log-likelihood per epoch on the training batches (nats).
        val_loss: mean negative log-likelihood per epoch on the validation set (nats), empty
            without validation data.
        best_epoch: epoch (0-based) whose weights the model holds at the end.
        stopped_early: whether patience ran out before ``epochs``.
        learning_rate: the learning rate each epoch trained with.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        """Number of epochs trained."""
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float:
        """Validation loss at ``best_epoch`` (NaN without validation data)."""
        return self.val_loss[self.best_epoch] if self.val_loss else math.nan


def _log_prob(model: nn.Module, x: Tensor, context: Tensor | None) -> Tensor:
    return model.log_prob(x) if context is None else model.log_prob(x, context)


@torch.no_grad()
def mean_log_prob(
    model: nn.Module, x: Tensor, context: Tensor | None = None, batch_size: int = 4096
) -> tuple[float, float]:
    """Average log-density of ``x`` under ``model`` in evaluation mode, with its standard error.

    Args:
        model: anything with ``log_prob(x[, context])``.
        x: (n, ...) points.
        context: (n, context_dim) or None.
        batch_size: rows per evaluation batch (bounds memory, not the result).

    Returns:
        (mean, standard error) in nats.
    """
    was_training = model.training
    model.eval()
    values = torch.cat(
        [
            _log_prob(
                model,
                x[i : i + batch_size],
                None if context is None else context[i : i + batch_size],
            )
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    model.train(was_training)
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def _check_pair(data: object, context: object, name: str) -> None:
    if not isinstance(data, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(data).__name__}")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if context is not None and (
        not isinstance(context, Tensor) or context.shape[0] != data.shape[0]
    ):
        got = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
        raise ValueError(f"the context of {name} must have {data.shape[0]} rows, got {got}")


def fit(
    model: nn.Module,
    data: Tensor,
    val_data: Tensor | None = None,
    context: Tensor | None = None,
    val_context: Tensor | None = None,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    patience: int | None = 20,
    weight_decay: float = 0.0,
    clip_grad: float | None = 5.0,
    schedule: str | None = None,
    progress: bool = False,
    verbose: bool = False,
    resample: Callable[[], Tensor] | None = None,
) -> History:
    """Train ``model`` by maximum likelihood with Adam.

    Each epoch shuffles ``data`` into mini-batches and minimises the mean negative
    log-likelihood. With ``val_data`` the validation loss is computed after every epoch;
    training stops once it has not improved for ``patience`` epochs and the best weights are
    restored. When it returns, the model is in evaluation mode and any batch-norm layer holds
    the statistics of the full training set, so ``log_prob`` of a point does not depend on
    the rest of its batch.

    **Gradient clipping is on by default.** Before every step the gradient of all
    parameters together is rescaled, if its Euclidean norm exceeds ``clip_grad`` = 5, to
    norm 5 (``torch.nn.utils.clip_grad_norm_``); this keeps a rare bad batch from throwing
    the flow far off. The gradient is that of the mean negative log-likelihood per item of
    ``data``: for sequences (:class:`mafkit.TemporalMAF`, whose ``log_prob`` sums T steps)
    it is about T times the per-step one, so there clipping acts T times sooner.
    ``clip_grad=None`` turns it off.

    Args:
        model: anything with ``log_prob(x[, context])`` returning (batch,).
        data: (n, ...) training points.
        val_data: (m, ...) validation points, or None.
        context: (n, context_dim) training contexts if the model is conditional.
        val_context: (m, context_dim) validation contexts.
        epochs: maximum number of epochs.
        batch_size: points per step.
        lr: Adam learning rate.
        patience: epochs without validation improvement before stopping (None: never).
        weight_decay: Adam weight decay.
        clip_grad: largest gradient norm allowed per step (see above), None: no clipping.
        schedule: None for a constant learning rate, or ``"cosine"``: the learning rate of
            epoch e is ``lr * (1 + cos(pi * e / epochs)) / 2``, falling from ``lr`` towards
            0 over ``epochs`` (``torch.optim.lr_scheduler.CosineAnnealingLR``, stepped once
            per epoch, as in the seed's recipe). Early stopping may end training before the
            rate reaches 0. :attr:`History.learning_rate` records the rates used.
        progress: show a tqdm progress bar (needs the ``progress`` extra).
        verbose: print one line every 10 epochs.
        resample: called at the start of every epoch after the first, returns new training
            points shaped like ``data`` (row i keeps context row i), e.g. fresh
            dequantisation noise (:meth:`mafkit.data.Digits.redequantise_train`).

    Returns:
        the :class:`History` of losses.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if patience is not None:
        check_positive_int(patience, "patience")
    if schedule not in (None, "cosine"):
        raise ValueError(f"schedule must be None or 'cosine', got {schedule!r}")
    if clip_grad is not None and not clip_grad > 0:
        raise ValueError(f"clip_grad must be > 0 or None, got {clip_grad}")
    _check_pair(data, context, "data")
    if val_data is not None:
        _check_pair(val_data, val_context, "val_data")
    elif val_context is not None:
        raise ValueError("val_context was given without val_data")

    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = None
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = History()
    best_state, best_loss, waited = None, math.inf, 0
    epoch_range = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epoch_range = tqdm(epoch_range, desc="fit", unit="epoch")

    n = data.shape[0]
    for epoch in epoch_range:
        if resample is not None and epoch > 0:
            data = resample()
            if not isinstance(data, Tensor) or data.shape[0] != n:
                got = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
                raise ValueError(f"resample must return a tensor with {n} rows, got {got}")
        model.train()
        history.learning_rate.append(optimizer.param_groups[0]["lr"])
        total = 0.0
        for idx in torch.randperm(n, device=data.device).split(batch_size):
            if len(idx) < 2 < n:  # a lone point gives no batch statistics; skip it
                continue
            loss = -_log_prob(model, data[idx], None if context is None else context[idx]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            total += loss.item() * len(idx)
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(total / n)
        if not math.isfinite(history.train_loss[-1]):
            raise FloatingPointError(
                f"training loss became {history.train_loss[-1]} at epoch {epoch}; "
                "try a smaller lr or a smaller scale_bound"
            )

        if val_data is not None:
            _finish_batch_norm(model, data, context)
            val_loss = -mean_log_prob(model, val_data, val_context)[0]
            history.val_loss.append(val_loss)
            if val_loss < best_loss:
                best_loss, waited, history.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
            if progress:
                epoch_range.set_postfix(train=history.train_loss[-1], val=val_loss)
            if patience is not None and waited >= patience:
                history.stopped_early = True
                break
        else:
            history.best_epoch = epoch
        if verbose and (epoch % 10 == 0 or epoch == epochs - 1):
            val = f", val {history.val_loss[-1]:.3f}" if history.val_loss else ""
            print(f"epoch {epoch:4d}: train {history.train_loss[-1]:.3f}{val}")

    if best_state is not None:
        model.load_state_dict(best_state)
    _finish_batch_norm(model, data, context)
    model.eval()
    return history


def _finish_batch_norm(model: nn.Module, data: Tensor, context: Tensor | None) -> None:
    """Give batch-norm layers full-training-set statistics (no-op for models without)."""
    if any(isinstance(m, BatchNorm) for m in model.modules()):
        model.set_batch_norm_statistics(data, context)
