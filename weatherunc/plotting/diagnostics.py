"""Verification diagnostics as figures: reliability with counts, bin frequencies, PIT, coverage, scores by
distance.

Inputs are the outputs of :mod:`weatherunc.metrics` (xarray), or predictions and truths from
which they are computed, so the figures show exactly the numbers the benchmarks report.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

NOMINAL_LEVELS = (0.5, 0.8, 0.9, 0.95)


def reliability_figure(diagrams: Mapping[str, xr.Dataset], *, title: str = "reliability") -> Figure:
    """Reliability diagrams (from :func:`weatherunc.metrics.reliability_diagram`), one line per
    label, with the number of forecasts per bin below (log scale)."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    width = 1.0 / max(len(diagram["bin"]) for diagram in diagrams.values()) / max(1, len(diagrams))
    for number, (label, diagram) in enumerate(diagrams.items()):
        filled = diagram["count"].values > 0
        top.plot(
            diagram["forecast_probability"].values[filled],
            diagram["observed_frequency"].values[filled],
            marker="o",
            label=label,
        )
        bottom.bar(
            diagram["bin"].values + (number - (len(diagrams) - 1) / 2) * width,
            diagram["count"].values,
            width=width,
            label=label,
        )
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency", title=title)
    top.legend(fontsize=8)
    bottom.set(yscale="log", xlabel="forecast probability", ylabel="count")
    figure.tight_layout()
    return figure


def bin_frequency_figure(
    frequencies: Mapping[str, tuple[np.ndarray, np.ndarray]],
    bin_labels: list[str],
    *,
    title: str = "how often each bin is observed and forecast",
) -> Figure:
    """One panel per label: the observed frequency of each precipitation bin beside the mean
    forecast probability of that bin (``{label: (observed [bins], forecast [bins])}``).

    Where the two bars differ, the forecast misjudges how often the bin occurs on those tasks: a
    shift that per-bin biases can absorb and a single temperature cannot.
    """
    count = len(frequencies)
    columns = min(3, count)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.2 * rows), sharey=True, squeeze=False
    )
    positions = np.arange(len(bin_labels))
    for panel, (label, (observed, forecast)) in zip(axes.flat, frequencies.items()):
        panel.bar(positions - 0.2, observed, width=0.4, label="observed")
        panel.bar(positions + 0.2, forecast, width=0.4, label="forecast (mean probability)")
        panel.set_xticks(positions, bin_labels, rotation=60, fontsize=7)
        panel.set_title(label, fontsize=9)
    for panel in axes.flat[count:]:
        panel.set_visible(False)
    axes.flat[0].set_ylabel("fraction of targets")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def pit_figure(histograms: Mapping[str, xr.DataArray], *, title: str = "PIT histogram") -> Figure:
    """PIT histograms (dim ``pit_bin``: :func:`weatherunc.evaluation.rate_pit_histogram`, or
    :func:`weatherunc.metrics.pit_histogram` for a Gaussian), flat line at 1/bins."""
    figure, axes = plt.subplots(figsize=(5.5, 4))
    for number, (label, histogram) in enumerate(histograms.items()):
        centres = histogram["pit_bin"].values
        width = (centres[1] - centres[0]) / max(1, len(histograms))
        axes.bar(
            centres + (number - (len(histograms) - 1) / 2) * width,
            histogram.values,
            width=width,
            label=label,
            alpha=0.85,
        )
        axes.axhline(1.0 / len(centres), color="grey", linestyle="--", linewidth=1)
    axes.set(xlim=(0, 1), xlabel="PIT", ylabel="relative frequency", title=title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def coverage_figure(
    coverage: Mapping[str, Mapping[float, float]], *, title: str = "central-interval coverage"
) -> Figure:
    """Empirical coverage against nominal level, one line per label (``{label: {level: coverage}}``)."""
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="nominal")
    for label, values in coverage.items():
        levels = sorted(values)
        axes.plot(levels, [values[level] for level in levels], marker="o", label=label)
    axes.set(xlim=(0.4, 1), ylim=(0.4, 1), xlabel="nominal level", ylabel="empirical coverage", title=title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def distance_figure(
    by_distance: Mapping[str, xr.Dataset], *, title: str = "skill against distance to the nearest observation"
) -> Figure:
    """CRPS and 90 % coverage against distance (each dataset: dim ``distance`` with ``crps``,
    ``coverage_90`` and ``count``, as written by :func:`weatherunc.evaluation.scores_by_distance`)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, scores in by_distance.items():
        distance = scores["mean_distance"].values
        left.plot(distance, scores["crps"].values, marker="o", label=label)
        right.plot(distance, scores["coverage_90"].values, marker="o", label=label)
    right.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    right.axhspan(0.85, 0.95, color="grey", alpha=0.15, label="0.85-0.95")
    left.set(xlabel="distance to nearest context [km]", ylabel="CRPS [mm h-1]", title="CRPS")
    right.set(
        xlabel="distance to nearest context [km]",
        ylabel="coverage of the 90 % interval",
        ylim=(0, 1),
        title="90 % coverage",
    )
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def model_comparison_figure(
    scores: Mapping[str, Mapping[str, float]],
    *,
    metrics: tuple[str, ...] = ("crps", "rmse", "nlpd", "coverage_90"),
    title: str = "models side by side",
) -> Figure:
    """Bar charts of scores per model (``{model: {metric: value}}``); coverage panels show the nominal 0.9."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6))
    labels = list(scores)
    for axis, metric in zip(np.atleast_1d(axes), metrics):
        axis.bar(
            labels,
            [scores[label][metric] for label in labels],
            color=[f"C{number}" for number in range(len(labels))],
        )
        if metric.startswith("coverage_"):
            axis.axhline(int(metric.split("_")[1]) / 100, color="grey", linestyle="--", linewidth=1)
        axis.set_title(metric)
        axis.tick_params(axis="x", rotation=45)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
