"""Uncertainty maps (cartopy, in the data's own projection) and verification diagnostics.

Every function takes xarray and returns a matplotlib ``Figure``; nothing is shown or saved
unless the caller does so (see :func:`save_figure`).
"""

from weatherunc.plotting.diagnostics import (
    bin_frequency_figure,
    coverage_figure,
    distance_figure,
    model_comparison_figure,
    pit_figure,
    reliability_figure,
)
from weatherunc.plotting.maps import (
    combined_map,
    exceedance_map,
    mean_map,
    observed_map,
    save_figure,
    std_map,
    uncertainty_maps,
    variance_split_map,
)

__all__ = [
    "bin_frequency_figure",
    "combined_map",
    "coverage_figure",
    "distance_figure",
    "exceedance_map",
    "mean_map",
    "model_comparison_figure",
    "observed_map",
    "pit_figure",
    "reliability_figure",
    "save_figure",
    "std_map",
    "uncertainty_maps",
    "variance_split_map",
]
