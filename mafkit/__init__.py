"""mafkit: Masked Autoregressive Flows in PyTorch, the companion package of the MAF course."""

from . import checks, data, exercises, plot
from .autoregressive import BernoulliMADE, MADEMoG
from .distributions import MixtureOfGaussians, StandardNormal
from .flows import IAF, MAF, Flow, GaussianMADE, layer_orders
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
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "MixtureOfGaussians",
    "Permutation",
    "StandardNormal",
    "TemporalMAF",
    "Transform",
    "checks",
    "data",
    "exercises",
    "fit",
    "hidden_degrees",
    "hidden_mask",
    "input_degrees",
    "layer_orders",
    "mean_log_prob",
    "output_mask",
    "plot",
    "set_seed",
    "soft_clamp",
]

__version__ = "0.2.0"
