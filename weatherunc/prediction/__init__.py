"""The prediction schema and the derived outputs: :class:`Prediction` owns what every model returns."""

from weatherunc.prediction.attributes import (
    ATTRS,
    DEFAULT_QUANTILES,
    DEFAULT_THRESHOLDS,
    DERIVED_SOURCE,
    HEAD_SOURCE,
    RATE_OUTPUTS,
    read_transform,
)
from weatherunc.prediction.distribution import (
    TRANSFORM_ATTRIBUTES,
    epistemic_share,
    gaussian_bin_probabilities,
    single_transform,
    transform_from_attrs,
    transform_groups,
)
from weatherunc.prediction.schema import BinProbabilities, Prediction

__all__ = [
    "ATTRS",
    "DEFAULT_QUANTILES",
    "DEFAULT_THRESHOLDS",
    "DERIVED_SOURCE",
    "HEAD_SOURCE",
    "RATE_OUTPUTS",
    "TRANSFORM_ATTRIBUTES",
    "BinProbabilities",
    "Prediction",
    "epistemic_share",
    "gaussian_bin_probabilities",
    "read_transform",
    "single_transform",
    "transform_from_attrs",
    "transform_groups",
]
