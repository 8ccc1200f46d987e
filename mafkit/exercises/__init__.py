"""Checkers for the notebooks in ``exercises/``: run a student's code, explain mistakes."""

from ._feedback import ExerciseError
from .flows import check_iaf_from_maf, check_maf_inverse
from .log_det import check_batch_norm, check_triangular_log_det
from .masks import check_context_path, check_masks
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
]
