"""Fitting self-calibration on pseudo-targets: std factors per distance bin and a bin-probability
scaler (see :mod:`weatherunc.heads.self_calibration`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import TemperatureScaling, VectorScaling
from weatherunc.heads.fitting import (
    effective_sample_size,
    pool_predictions,
    probabilities_and_observed_bins,
)
from weatherunc.heads.self_calibration.evidence import clustered_coverage, held_out_nll
from weatherunc.heads.self_calibration.options import SelfCalibrationOptions, distance_bin_index
from weatherunc.heads.self_calibration.scaled_scores import (
    FACTOR_GRID,
    UNIT_FACTOR,
    coverage_by_factor,
    scaled_coverage,
    scaled_crps,
    scaled_squared_error,
    weighted_mean,
)
from weatherunc.metrics import top_label_ece
from weatherunc.prediction import Prediction


def _smallest_covering_factor(covered: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The smallest factor of :data:`FACTOR_GRID` whose weighted coverage (``covered``: rows of
    :func:`coverage_by_factor`; ``weights`` with a positive sum) reaches ``level (1 + 1 / n)``, with
    ``n`` the weights' :func:`~weatherunc.heads.fitting.effective_sample_size`: split conformal
    prediction's finite-sample level, the ``ceil((n + 1) level)``-th of ``n`` calibration scores
    (Vovk et al. 2005), so that a new target is covered with probability at least ``level`` where
    the pseudo-targets are exchangeable with it (the largest factor if none reaches it)."""
    coverage = weights @ covered / float(np.sum(weights))
    reached = np.flatnonzero(coverage >= min(level * (1.0 + 1.0 / effective_sample_size(weights)), 1.0))
    return float(FACTOR_GRID[reached[0]] if reached.size else FACTOR_GRID[-1])


@dataclass(frozen=True)
class SelfCalibration:
    """Std factors per distance bin and a bin-probability scaler fitted on pseudo-targets."""

    distance_edges_km: tuple[float, ...]
    factors: tuple[float, ...]
    overall_factor: float
    probability: TemperatureScaling | VectorScaling | None
    scores: dict[str, object] = field(default_factory=dict)
    #: Whether the std factors keep the rate's mean (else its median; :meth:`Prediction.rescaled`).
    keep_mean: bool = False

    def factor_at(self, distance: np.ndarray) -> np.ndarray:
        """The std factor of each target ``[n]`` from its distance [km] to the nearest context."""
        bins = distance_bin_index(distance, self.distance_edges_km)
        return np.where(bins >= 0, np.asarray(self.factors)[np.maximum(bins, 0)], self.overall_factor)

    def apply(self, prediction: xr.Dataset, distance: np.ndarray) -> xr.Dataset:
        """The prediction with std factors by ``distance`` ``[n_target]`` and scaled bin probabilities."""
        return self.apply_to(Prediction.from_dataset(prediction), distance).to_dataset()

    def apply_to(self, prediction: Prediction, distance: np.ndarray) -> Prediction:
        """:meth:`apply` on a :class:`~weatherunc.prediction.Prediction`: a categorical head's bins
        are kept (then scaled), bins derived from the Gaussian are derived again from the new std
        (:meth:`~weatherunc.prediction.Prediction.rescaled`; the default bins where it had none)."""
        factor = self.factor_at(distance)
        calibrated = prediction.rescaled(factor, keep_mean=self.keep_mean).with_derived_bins()
        if self.probability is not None:
            calibrated = calibrated.with_bin_probability(self.probability.apply(calibrated.bins.probability))
        return calibrated

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description."""
        return {
            "method": "self",
            "distance_edges_km": list(self.distance_edges_km),
            "std_factors": list(self.factors),
            "overall_std_factor": self.overall_factor,
            **({"keep_mean": True} if self.keep_mean else {}),
            "probability": None if self.probability is None else self.probability.to_dict(),
            "scores": self.scores,
        }


def _bin_members(
    bins: np.ndarray, weights: np.ndarray, options: SelfCalibrationOptions
) -> list[np.ndarray | None]:
    """Per distance bin, the indices of its pseudo-targets where it fits a std factor of its own:
    at least ``minimum_per_bin`` of them, at distances where there are real targets (a positive
    weight); None where it takes the overall factor."""
    every = [np.flatnonzero(bins == number) for number in range(len(options.distance_edges_km) - 1)]
    return [m if m.size >= options.minimum_per_bin and np.sum(weights[m]) > 0 else None for m in every]


def _factors_with_evidence(
    factors: list[float],
    overall: float,
    pooled_evidence: bool,
    members_by_bin: list[np.ndarray | None],
    covered: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray,
    options: SelfCalibrationOptions,
) -> tuple[list[float], float, bool]:
    """The std factors of ``evidence="per_bin"``, the overall factor and whether any factor is
    kept: a distance bin with a factor of its own (:func:`_bin_members`) keeps it only where its
    pseudo-targets' coverage as predicted (``covered`` ``[n]``) differs from ``level`` by more than
    ``evidence_z`` clustered standard errors (:func:`clustered_coverage`), else 1; a bin that took
    ``overall`` and the targets beyond the last edge keep ``overall`` only with
    ``pooled_evidence``, the test of all pseudo-targets."""
    overall = overall if pooled_evidence else 1.0
    kept = []
    for factor, members in zip(factors, members_by_bin):
        if members is None:
            kept.append(overall)
            continue
        coverage, error = clustered_coverage(covered[members], weights[members], clusters[members])
        kept.append(factor if abs(coverage - options.level) > options.evidence_z * error else 1.0)
    return kept, overall, any(factor != 1.0 for factor in [*kept, overall])


def _interval_and_bins_scores(
    prediction: xr.Dataset,
    truth: np.ndarray,
    weights: np.ndarray,
    level: float,
    covered: np.ndarray | None = None,
) -> dict[str, float]:
    """Weighted coverage of the central ``level`` interval and the bins' top-label ECE of
    ``prediction`` on ``truth``; ``covered`` ``[n]``: its coverage per target, where already known."""
    pooled, _ = pool_predictions([with_bin_probabilities(prediction)], [truth])
    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    if covered is None:
        covered = scaled_coverage(prediction, truth, level)
    return {
        f"coverage_{round(level * 100)}": round(weighted_mean(covered, weights), 4),
        "ece": round(
            top_label_ece(
                xr.DataArray(probabilities, dims=("point", conventions.BIN)),
                xr.DataArray(observed.astype(float), dims="point"),
            ),
            4,
        ),
    }


def fit_self_calibration(
    prediction: xr.Dataset,
    truth: np.ndarray,
    distance: np.ndarray,
    weights: np.ndarray,
    options: SelfCalibrationOptions,
    discs: np.ndarray | None = None,
    probability_weights: np.ndarray | None = None,
) -> SelfCalibration | None:
    """Fit on pseudo-targets (see the module docstring): their ``prediction``, ``truth`` [mm/h],
    ``distance`` [km] to the nearest remaining context, importance ``weights`` and, where known,
    the ``discs`` that hid them (recorded: the pseudo-targets of one disc are correlated, so the
    count of discs, not of targets, tells how much independent evidence the fit had), each
    ``[n_pseudo]``; None below ``minimum_targets``. The std factors are kept only where the
    pseudo-targets' coverage differs from ``level`` by more than ``evidence_z`` standard errors
    (:func:`clustered_coverage`, discs as clusters), and where they raise neither the pseudo-targets'
    weighted CRPS by more than ``crps_tolerance`` nor the weighted squared error of the rate's mean
    by more than ``mean_error_tolerance`` (relative); ``scores["std_factors_dropped_by"]`` names the
    guards that dropped them (``coverage_within_noise``, ``crps_rise``, ``mean_error_rise``); with
    ``guards=False`` the std factors are always kept.
    ``probability_weights`` ``[n_pseudo]``: the bin scaler's weights (unless ``probability_weighted``)."""
    if truth.size < options.minimum_targets:
        return None
    edges = options.distance_edges_km
    bins = distance_bin_index(distance, edges)
    covered = coverage_by_factor(prediction, truth, options.level)
    overall = _smallest_covering_factor(covered, weights, options.level)
    members_by_bin = _bin_members(bins, weights, options)
    factors = []
    for members in members_by_bin:
        if members is None:
            factors.append(overall)
            continue
        local = _smallest_covering_factor(covered[members], weights[members], options.level)
        share = members.size / (members.size + options.shrinkage)
        factors.append(float(np.exp(share * np.log(local) + (1 - share) * np.log(overall))))
    covered_as_predicted = covered[:, UNIT_FACTOR]
    before = _interval_and_bins_scores(prediction, truth, weights, options.level, covered_as_predicted)
    crps_before = weighted_mean(scaled_crps(prediction, truth), weights)
    squared_error_before = weighted_mean(scaled_squared_error(prediction, truth), weights)
    clusters = np.arange(truth.size) if discs is None else np.asarray(discs)
    coverage, error = clustered_coverage(covered_as_predicted, weights, clusters)
    evidence = not options.guards or abs(coverage - options.level) > options.evidence_z * error
    if options.evidence == "per_bin" and options.guards:
        factors, overall, evidence = _factors_with_evidence(
            factors, overall, evidence, members_by_bin, covered_as_predicted, weights, clusters, options
        )
    # Kept only where the pseudo-targets' coverage is off by more than their noise, where a wider (or
    # narrower) interval does not cost sharpness beyond the tolerance, and where the wider std does not
    # carry the rate's mean away from the truth (under a log transform the mean grows as exp(std^2 / 2)).
    crps_after, squared_error_after = crps_before, squared_error_before
    if evidence:
        candidate = SelfCalibration(tuple(edges), tuple(factors), overall, None).factor_at(distance)
        keep = options.keep_mean
        crps_after = weighted_mean(scaled_crps(prediction, truth, candidate, keep), weights)
        squared_error_after = weighted_mean(scaled_squared_error(prediction, truth, candidate, keep), weights)
    dropped_by = [
        reason
        for reason, failed in (
            ("coverage_within_noise", not evidence),
            ("crps_rise", evidence and crps_after > (1 + options.crps_tolerance) * crps_before),
            (
                "mean_error_rise",
                evidence and squared_error_after > (1 + options.mean_error_tolerance) * squared_error_before,
            ),
        )
        if failed and options.guards
    ]
    intervals_kept = not dropped_by
    if not intervals_kept:
        factors, overall = [1.0] * len(factors), 1.0
        crps_after, squared_error_after = crps_before, squared_error_before
    interim = SelfCalibration(tuple(edges), tuple(factors), overall, None, keep_mean=options.keep_mean)
    rescaled = interim.apply(prediction, distance)
    probability, held_out, effective = None, None, 0.0
    if options.probability != "none":
        pooled, _ = pool_predictions([rescaled], [truth])
        probabilities, observed = probabilities_and_observed_bins(pooled, truth)
        known = np.isfinite(truth)
        # the real targets' distance mix, as for the std factors
        scaler_weights = weights if options.probability_weighted else probability_weights
        known_weights = np.ones(int(known.sum())) if scaler_weights is None else scaler_weights[known]
        effective = effective_sample_size(known_weights)
        vector = options.probability == "vector" and observed.size >= options.vector_minimum

        def fit(chosen: np.ndarray) -> TemperatureScaling | VectorScaling:
            weighted = known_weights[chosen] if np.sum(known_weights[chosen]) > 0 else None
            if vector:
                return VectorScaling.fit(
                    probabilities[chosen],
                    observed[chosen],
                    penalty=options.vector_penalty,
                    sample_weight=weighted,
                )
            return TemperatureScaling.fit(probabilities[chosen], observed[chosen], sample_weight=weighted)

        probability = fit(np.arange(observed.size)) if effective >= options.minimum_targets else None
        if probability is not None and options.probability_cross_validated:
            folds = clusters[known] % 2
            held_out = held_out_nll(probabilities, observed, folds, fit, known_weights)
            if held_out is not None and held_out[1] >= held_out[0]:
                probability = None  # the scaler does not carry over from one half of the discs to the other
    fitted = replace(interim, probability=probability)
    after = _interval_and_bins_scores(fitted.apply(prediction, distance), truth, weights, options.level)
    before["crps"], after["crps"] = round(crps_before, 5), round(crps_after, 5)
    before["rmse"], after["rmse"] = (
        round(float(np.sqrt(squared_error_before)), 5),
        round(float(np.sqrt(squared_error_after)), 5),
    )
    return replace(
        fitted,
        scores={
            "pseudo_targets": int(truth.size),
            **({"discs": int(np.unique(discs).size)} if discs is not None else {}),
            "std_factors_kept": intervals_kept,
            "std_factors_dropped_by": dropped_by,
            "coverage_standard_error": round(error, 4) if np.isfinite(error) else None,  # None: one disc
            "probability_kept": probability is not None,
            "probability_effective_targets": round(effective, 1) if options.probability != "none" else None,
            **(
                {"held_out_nll_before": round(held_out[0], 5), "held_out_nll_after": round(held_out[1], 5)}
                if held_out is not None
                else {}
            ),
            "before": before,
            "after": after,
        },
    )
