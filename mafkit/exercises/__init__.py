"""Checkers for the notebooks in ``exercises/``: run a student's code, explain mistakes."""

from ._feedback import ExerciseError
from .coupling import check_coupling_degrees, check_coupling_layer
from .flows import check_iaf_from_maf, check_maf_inverse
from .log_det import check_batch_norm, check_triangular_log_det
from .masks import check_context_path, check_masks
from .mog import check_made_mog, check_mog_log_prob
from .scratch import (
    check_maf_layer,
    check_two_moons_fit,
    moons_training_data,
    two_moons_reference,
)
from .temporal import check_temporal_step

# Shown in tracebacks and used by pickle: keep the public path it had as one module.
ExerciseError.__module__ = __name__

__all__ = [
    "ExerciseError",
    "check_masks",
    "check_maf_inverse",
    "check_iaf_from_maf",
    "check_context_path",
    "check_temporal_step",
    "check_triangular_log_det",
    "check_batch_norm",
    "check_maf_layer",
    "check_two_moons_fit",
    "two_moons_reference",
    "moons_training_data",
    "check_mog_log_prob",
    "check_made_mog",
    "check_coupling_degrees",
    "check_coupling_layer",
]
