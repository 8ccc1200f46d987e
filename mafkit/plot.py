"""Figure helpers with one look across the course: labelled axes, equal aspect for 2-D."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import Tensor

from .checks import grid_2d

__all__ = ["density_2d", "samples_2d", "training_curve", "mask_matrices", "digit_grid"]


def _label(ax: Axes, title: str | None, xlabel: str = "$x_1$", ylabel: str = "$x_2$") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


@torch.no_grad()
def density_2d(
    ax: Axes,
    log_prob: Callable[[Tensor], Tensor],
    bounds: tuple[tuple[float, float], tuple[float, float]],
    n: int = 150,
    title: str | None = None,
) -> Tensor:
    """Draw ``exp(log_prob)`` on a grid as an image; returns the (n, n) density values."""
    grid, _ = grid_2d(bounds, n)
    density = torch.exp(log_prob(grid)).view(n, n)
    (x0, x1), (y0, y1) = bounds
    ax.imshow(
        density.numpy(), origin="lower", extent=(x0, x1, y0, y1), aspect="auto", cmap="viridis"
    )
    _label(ax, title)
    return density


def samples_2d(
    ax: Axes,
    x: Tensor,
    title: str | None = None,
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
    **kwargs: object,
) -> None:
    """Scatter (n, 2) points with small translucent markers."""
    x = x.detach()
    ax.scatter(x[:, 0], x[:, 1], s=kwargs.pop("s", 2), alpha=kwargs.pop("alpha", 0.4), **kwargs)
    if bounds is not None:
        ax.set_xlim(bounds[0])
        ax.set_ylim(bounds[1])
    _label(ax, title)


def training_curve(ax: Axes, history: object, title: str | None = None) -> None:
    """Plot a :class:`mafkit.History`: training and validation NLL per epoch."""
    ax.plot(history.train_loss, label="training")
    if history.val_loss:
        ax.plot(history.val_loss, label="validation")
        ax.axvline(history.best_epoch, color="grey", linestyle=":", label="best epoch")
    ax.legend()
    _label(ax, title, "epoch", "negative log-likelihood (nats)")


def mask_matrices(masks: list[Tensor], titles: list[str] | None = None) -> plt.Figure:
    """Show a MADE's masks side by side (black: connection)."""
    fig, axes = plt.subplots(1, len(masks), figsize=(3 * len(masks), 3), squeeze=False)
    for i, (ax, mask) in enumerate(zip(axes[0], masks)):
        ax.imshow(mask.cpu().numpy(), cmap="Greys", vmin=0, vmax=1)
        _label(ax, titles[i] if titles else f"mask {i + 1}", "input unit", "output unit")
    fig.tight_layout()
    return fig


def digit_grid(images: Tensor, n_cols: int = 10, title: str | None = None) -> plt.Figure:
    """Show (n, 8, 8) images in a grid."""
    n = images.shape[0]
    n_rows = (n + n_cols - 1) // n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols, n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(image.detach().cpu().numpy(), cmap="gray_r", vmin=0, vmax=16)
    if title:
        fig.suptitle(title)
    return fig
