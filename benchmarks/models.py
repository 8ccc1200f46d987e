"""The same MAF built with mafkit, zuko and nflows, behind one small interface.

Architecture for every library: 5 autoregressive layers, each a MADE with two hidden
layers of 128 ReLU units, orders alternating natural / reversed, no batch norm, a standard
normal base, float32. What differs is the parametrisation of the scale (see RESULTS.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

N_LAYERS = 5
HIDDEN = (128, 128)
LIBRARIES = ("mafkit", "zuko", "nflows")


class ZukoFlow(nn.Module):
    """zuko's MAF with ``log_prob(x)`` and ``sample(n)`` methods."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        import zuko

        # randperm=False: ascending order in even layers, descending in odd ones.
        self.flow = zuko.flows.MAF(
            features=dim, transforms=N_LAYERS, hidden_features=HIDDEN, randperm=False
        )

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow().log_prob(x)

    def sample(self, n: int) -> Tensor:
        return self.flow().sample((n,))


class NflowsFlow(nn.Module):
    """nflows' MADE affine layers with ReversePermutation in between."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        from nflows.distributions.normal import StandardNormal
        from nflows.flows.base import Flow
        from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
        from nflows.transforms.base import CompositeTransform
        from nflows.transforms.permutations import ReversePermutation

        layers = []
        for i in range(N_LAYERS):
            if i > 0:
                layers.append(ReversePermutation(dim))
            # num_blocks=1 without residual blocks: initial layer + one block = 2 hidden layers.
            layers.append(
                MaskedAffineAutoregressiveTransform(
                    features=dim,
                    hidden_features=HIDDEN[0],
                    num_blocks=len(HIDDEN) - 1,
                    use_residual_blocks=False,
                )
            )
        self.flow = Flow(CompositeTransform(layers), StandardNormal([dim]))

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow.log_prob(x)

    def sample(self, n: int) -> Tensor:
        return self.flow.sample(n)


def build(library: str, dim: int, scale_bound: float | None = None) -> nn.Module:
    """A fresh float32 model of ``library`` on R^dim with ``log_prob`` and ``sample``.

    ``scale_bound`` (mafkit only) overrides the default bound of the log-scale.
    """
    if library == "mafkit":
        import mafkit

        bound = {} if scale_bound is None else {"scale_bound": scale_bound}
        return mafkit.MAF(
            dim, n_layers=N_LAYERS, hidden=HIDDEN, order="reversed", batch_norm=False, **bound
        )
    if library == "mafkit-before":
        # A copy of an older mafkit renamed to the package ``mafkit_before`` (speed.py --before).
        import mafkit_before

        return mafkit_before.MAF(
            dim, n_layers=N_LAYERS, hidden=HIDDEN, order="reversed", batch_norm=False
        )
    if library == "zuko":
        return ZukoFlow(dim)
    if library == "nflows":
        return NflowsFlow(dim)
    raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")


def versions() -> dict[str, str]:
    """Versions of torch and the three libraries (and where mafkit was imported from)."""
    import nflows
    import zuko

    import mafkit

    return {
        "torch": torch.__version__,
        "mafkit": f"{mafkit.__version__} ({mafkit.__file__})",
        "zuko": zuko.__version__,
        "nflows": getattr(nflows, "__version__", "0.14"),
    }
