"""Verification scores: NumPy kernels (:mod:`.kernels`) under xarray functions (:mod:`.scores`)."""

from weatherunc.metrics.categorical import (
    categorical_nll,
    consistency_top_label_ece,
    multiclass_brier_score,
    observed_bins,
    ranked_probability_score,
    top_label_calibration,
    top_label_ece,
)
from weatherunc.metrics.discrimination import area_under_roc
from weatherunc.metrics.reliability import (
    ReliabilityAccumulator,
    expected_calibration_error,
    reliability_diagram,
)
from weatherunc.metrics.scores import (
    BrierDecomposition,
    bias,
    brier_decomposition,
    brier_score,
    crps_ensemble,
    crps_gaussian,
    gaussian_interval_coverage,
    mean_absolute_error,
    negative_log_predictive_density,
    pit_histogram,
    root_mean_squared_error,
)

__all__ = [
    "area_under_roc",
    "BrierDecomposition",
    "bias",
    "brier_decomposition",
    "brier_score",
    "crps_ensemble",
    "crps_gaussian",
    "gaussian_interval_coverage",
    "mean_absolute_error",
    "negative_log_predictive_density",
    "pit_histogram",
    "root_mean_squared_error",
    "ReliabilityAccumulator",
    "expected_calibration_error",
    "reliability_diagram",
    "categorical_nll",
    "consistency_top_label_ece",
    "multiclass_brier_score",
    "observed_bins",
    "ranked_probability_score",
    "top_label_calibration",
    "top_label_ece",
]
