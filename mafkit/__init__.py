"""mafkit: Masked Autoregressive Flows in PyTorch, the companion package of the MAF course.

``import mafkit`` loads torch and the models only. The course helpers ``mafkit.checks``,
``mafkit.data``, ``mafkit.plot`` (matplotlib) and ``mafkit.exercises`` load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .autoregressive import BernoulliMADE, GaussianMADE, MADEMoG, MAFMoG
from .distributions import MixtureOfGaussians, StandardNormal
from .flows import IAF, MAF, Flow, layer_orders
from .made import MADE, MaskedLinear
from .masks import hidden_degrees, hidden_mask, input_degrees, output_mask
from .seed import set_seed
from .temporal import TemporalMAF
from .train import History, fit, mean_log_prob
from .transforms import (
    BatchNorm,
    Inverted,
    MaskedAffineAutoregressive,
    Permutation,
    Transform,
    soft_clamp,
)

if TYPE_CHECKING:  # for type checkers and editors; at run time they load on first use
    from . import book, checks, data, exercises, incremental, plot

_ON_FIRST_USE = ("book", "checks", "data", "exercises", "incremental", "plot")

__all__ = [
    "BatchNorm",
    "BernoulliMADE",
    "Flow",
    "GaussianMADE",
    "History",
    "IAF",
    "Inverted",
    "MADE",
    "MADEMoG",
    "MAF",
    "MAFMoG",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "MixtureOfGaussians",
    "Permutation",
    "StandardNormal",
    "TemporalMAF",
    "Transform",
    "book",
    "checks",
    "data",
    "exercises",
    "fit",
    "hidden_degrees",
    "hidden_mask",
    "incremental",
    "input_degrees",
    "layer_orders",
    "mean_log_prob",
    "output_mask",
    "plot",
    "set_seed",
    "soft_clamp",
]

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """Load the course helpers (``mafkit.plot`` and the like) when first used."""
    if name in _ON_FIRST_USE:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
