"""Self-calibration: each prediction is calibrated on pseudo-gaps of its own observations.

In gap filling the observed part of the very field being filled is labelled data from this
radar, this weather, this moment. :func:`pseudo_task` hides discs of the task's contexts and turns
them into pseudo-targets, predicted from the remaining contexts by the same model; discs are
centred on random contexts with radii drawn from the real targets' distances to their nearest
context, and each pseudo-target is weighted so that the distribution of distances to the nearest
remaining context matches the real targets' (importance weights per distance bin).

:func:`fit_self_calibration` then fits, on the pseudo-targets:

- the intervals: a std factor per distance bin, the smallest on a grid whose randomised-PIT
  coverage of the central 90 % interval reaches 0.9 (split conformal calibration of the
  interval, Vovk et al. 2005; conditioned on the distance to the nearest observation as in the
  local spatial conformal prediction of Mao, Martin & Reich 2024), shrunk towards the factor of
  all pseudo-targets by ``shrinkage`` pseudo-counts; bins with too few pseudo-targets, and
  distances beyond the last bin, take the factor of all pseudo-targets; the factors are dropped
  when they raise the pseudo-targets' CRPS by more than ``crps_tolerance``;
- the rain-bin probabilities (after the std factors): vector scaling with a fixed L2 penalty (a
  per-radar bias is what its biases absorb), or temperature scaling with fewer pseudo-targets
  (Guo et al. 2017);

with a fall-back to no calibration below ``minimum_targets`` pseudo-targets. :func:`self_calibrate`
applies the fit to the real prediction and records what was fitted, on how many pseudo-targets,
and the before/after scores on them, in the attribute ``self_calibration`` (JSON).
:class:`SelfCalibrated` wraps any model so that its ``predict`` does all of this.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from weatherunc import conventions
from weatherunc.evaluation import CRPS_NODES, distance_to_nearest_context, transform_groups
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.calibration import TemperatureScaling, VectorScaling
from weatherunc.heads.fitting import pool_predictions, probabilities_and_observed_bins
from weatherunc.metrics import top_label_ece
from weatherunc.metrics.kernels import crps_ensemble
from weatherunc.prediction import HEAD_SOURCE, Prediction
from weatherunc.tasks import Task
from weatherunc.transforms import central_interval_coverage, quantile_nodes, quantiles

#: Coordinates kept when the predictions of several pseudo-tasks are pooled (the others differ).
POOLED_COORDINATES = (
    conventions.QUANTILE,
    conventions.THRESHOLD,
    conventions.BIN,
    conventions.BIN_LOWER,
    conventions.BIN_UPPER,
)
#: Std factors searched per distance bin.
FACTOR_GRID = np.exp(np.linspace(np.log(0.5), np.log(4.0), 61))


@dataclass(frozen=True)
class SelfCalibrationOptions:
    """How pseudo-targets are drawn and what is fitted on them.

    ``pseudo_fraction``: at most this share of the contexts is hidden (and at most
    ``max_pseudo_targets``); ``distance_edges_km``: the bins of distance to the nearest context;
    ``level``: the central interval whose coverage the std factors calibrate; ``probability``:
    the scaler of the bin probabilities (``"vector"`` falls back to temperature below
    ``vector_minimum`` pseudo-targets). A task with fewer contexts than give ``2 *
    minimum_targets`` pseudo-targets in one draw (a small station network) is drawn again with
    other seeds, up to ``max_repeats`` draws, and the draws' pseudo-targets are pooled. The std
    factors are kept only if they raise the pseudo-targets' weighted CRPS by at most
    ``crps_tolerance`` (relative); otherwise the intervals are left as the model gave them.
    """

    pseudo_fraction: float = 0.3
    max_pseudo_targets: int = 3000
    distance_edges_km: tuple[float, ...] = (0.0, 1.5, 3.0, 6.0, 12.0, 24.0, 48.0)
    level: float = 0.9
    shrinkage: float = 50.0
    minimum_per_bin: int = 30
    minimum_targets: int = 50
    probability: Literal["vector", "temperature", "none"] = "vector"
    vector_penalty: float = 0.01
    vector_minimum: int = 500
    max_repeats: int = 8
    crps_tolerance: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.pseudo_fraction < 1:
            raise ValueError(f"pseudo_fraction must be in (0, 1), got {self.pseudo_fraction}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        if self.crps_tolerance < 0:
            raise ValueError(f"crps_tolerance must be >= 0, got {self.crps_tolerance}")
        if self.max_repeats < 1:
            raise ValueError(f"max_repeats must be >= 1, got {self.max_repeats}")
        if (
            list(self.distance_edges_km) != sorted(set(self.distance_edges_km))
            or len(self.distance_edges_km) < 2
        ):
            raise ValueError(f"distance_edges_km must increase strictly, got {self.distance_edges_km}")


def _bin_of(distance: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Index of each distance's bin ``[n]``; -1 beyond the last edge."""
    index = np.searchsorted(np.asarray(edges), distance, side="right") - 1
    return np.where(distance >= edges[-1], -1, np.clip(index, 0, len(edges) - 2))


def pseudo_task(task: Task, options: SelfCalibrationOptions) -> tuple[Task, np.ndarray]:
    """Hide discs of ``task``'s contexts; returns the pseudo-task (the hidden contexts as targets,
    with their values as truth) and its importance weights ``[n_pseudo]`` (mean 1) that match the
    pseudo-targets' distances to the nearest remaining context to the real targets'."""
    rng = np.random.default_rng(options.seed)
    real = distance_to_nearest_context(task)
    budget = min(options.max_pseudo_targets, int(options.pseudo_fraction * task.n_context))
    if budget < 1 or task.n_context - budget < 1:
        raise ValueError(f"task: {task.n_context} contexts are too few for pseudo-targets")
    tree = cKDTree(task.context_coordinates)
    hidden = np.zeros(task.n_context, dtype=bool)
    radii = rng.choice(real, size=10 * budget + 10) * rng.uniform(1.0, 3.0, size=10 * budget + 10)
    for radius in radii:
        if hidden.sum() >= budget:
            break
        centre = task.context_coordinates[rng.integers(task.n_context)]
        inside = np.asarray(tree.query_ball_point(centre, r=max(radius, 1e-9)), dtype=np.int64)
        room = budget - int(hidden.sum())
        hidden[inside[: max(room, 1)] if inside.size > room else inside] = True
    kept = ~hidden
    pseudo = Task(
        context_coordinates=task.context_coordinates[kept],
        context_values=task.context_values[kept],
        target_coordinates=task.context_coordinates[hidden],
        target_values=task.context_values[hidden],
        context_covariates=None if task.context_covariates is None else task.context_covariates[kept],
        target_covariates=None if task.context_covariates is None else task.context_covariates[hidden],
        target_dim="target",
        target_coords={},
        description=f"pseudo-targets of {task.description}",
    )
    edges = options.distance_edges_km
    real_bins, pseudo_bins = _bin_of(real, edges), _bin_of(distance_to_nearest_context(pseudo), edges)
    bins = len(edges) - 1
    real_share = np.bincount(real_bins[real_bins >= 0], minlength=bins) / max(1, int((real_bins >= 0).sum()))
    pseudo_share = np.bincount(pseudo_bins[pseudo_bins >= 0], minlength=bins) / max(
        1, int((pseudo_bins >= 0).sum())
    )
    ratio = np.divide(real_share, pseudo_share, out=np.zeros(bins), where=pseudo_share > 0)
    weights = np.where(pseudo_bins >= 0, ratio[np.maximum(pseudo_bins, 0)], 0.0)
    return pseudo, weights / weights.mean() if weights.sum() > 0 else np.ones(pseudo.n_target)


def _gaussian(prediction: xr.Dataset, factor: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Transformed mean and std times ``factor``, each shaped like ``transformed_mean``."""
    return prediction[conventions.TRANSFORMED_MEAN].values, prediction[
        conventions.TRANSFORMED_STD
    ].values * factor


def _coverage(
    prediction: xr.Dataset, truth: np.ndarray, level: float, factor: np.ndarray | float = 1.0
) -> np.ndarray:
    """Randomised-PIT coverage ``[n]`` of the central ``level`` interval with the std times ``factor``."""
    mean, std = _gaussian(prediction, factor)
    covered = np.full(mean.shape, np.nan)
    for transform, members in transform_groups(prediction):
        covered[members] = central_interval_coverage(
            transform, mean[members], std[members], truth[members], level
        )
    return covered


def _crps(prediction: xr.Dataset, truth: np.ndarray, factor: np.ndarray | float = 1.0) -> np.ndarray:
    """CRPS ``[n]`` of each target (quantile-node approximation, as the verification scores it) with the
    std times ``factor``."""
    mean, std = _gaussian(prediction, factor)
    scores = np.full(mean.shape, np.nan)
    for transform, members in transform_groups(prediction):
        scores[members] = crps_ensemble(
            quantiles(transform, mean[members], std[members], quantile_nodes(CRPS_NODES)), truth[members]
        )
    return scores


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / max(np.sum(weights), 1e-12))


def _smallest_covering_factor(
    prediction: xr.Dataset, truth: np.ndarray, weights: np.ndarray, level: float
) -> float:
    """The smallest factor of :data:`FACTOR_GRID` whose weighted coverage reaches ``level`` (the largest if
    none does)."""
    for factor in FACTOR_GRID:
        if _weighted_mean(_coverage(prediction, truth, level, factor), weights) >= level:
            return float(factor)
    return float(FACTOR_GRID[-1])


@dataclass(frozen=True)
class SelfCalibration:
    """Std factors per distance bin and a bin-probability scaler fitted on pseudo-targets."""

    distance_edges_km: tuple[float, ...]
    factors: tuple[float, ...]
    overall_factor: float
    probability: TemperatureScaling | VectorScaling | None
    scores: dict[str, object] = field(default_factory=dict)

    def factor_at(self, distance: np.ndarray) -> np.ndarray:
        """The std factor of each target ``[n]`` from its distance [km] to the nearest context."""
        bins = _bin_of(distance, self.distance_edges_km)
        return np.where(bins >= 0, np.asarray(self.factors)[np.maximum(bins, 0)], self.overall_factor)

    def apply(self, prediction: xr.Dataset, distance: np.ndarray) -> xr.Dataset:
        """The prediction with std factors by ``distance`` ``[n_target]`` and scaled bin probabilities."""
        return self.apply_to(Prediction.from_dataset(prediction), distance).to_dataset()

    def apply_to(self, prediction: Prediction, distance: np.ndarray) -> Prediction:
        """:meth:`apply` on a :class:`~weatherunc.prediction.Prediction`: a categorical head's bins
        are kept (then scaled), bins derived from the Gaussian are derived again from the new std."""
        head = prediction.bins is not None and prediction.bins.source == HEAD_SOURCE
        calibrated = prediction.rescaled(self.factor_at(distance))
        if not head:  # probabilities derived from the Gaussian follow the new std
            calibrated = calibrated.with_bins(None).with_derived_bins()
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
            "probability": None if self.probability is None else self.probability.to_dict(),
            "scores": self.scores,
        }


def _interval_and_bins_scores(
    prediction: xr.Dataset, truth: np.ndarray, weights: np.ndarray, level: float
) -> dict[str, float]:
    pooled, _ = pool_predictions([with_bin_probabilities(prediction)], [truth])
    probabilities, observed = probabilities_and_observed_bins(pooled, truth)
    return {
        f"coverage_{round(level * 100)}": round(
            _weighted_mean(_coverage(prediction, truth, level), weights), 4
        ),
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
) -> SelfCalibration | None:
    """Fit on pseudo-targets (see the module docstring): their ``prediction``, ``truth`` [mm/h],
    ``distance`` [km] to the nearest remaining context and importance ``weights``, each
    ``[n_pseudo]``; None below ``minimum_targets``."""
    if truth.size < options.minimum_targets:
        return None
    edges = options.distance_edges_km
    bins = _bin_of(distance, edges)
    overall = _smallest_covering_factor(prediction, truth, weights, options.level)
    factors = []
    for number in range(len(edges) - 1):
        members = np.flatnonzero(bins == number)
        if members.size < options.minimum_per_bin:
            factors.append(overall)
            continue
        local = _smallest_covering_factor(
            prediction.isel(target=members), truth[members], np.ones(members.size), options.level
        )
        share = members.size / (members.size + options.shrinkage)
        factors.append(float(np.exp(share * np.log(local) + (1 - share) * np.log(overall))))
    before = _interval_and_bins_scores(prediction, truth, weights, options.level)
    crps_before = _weighted_mean(_crps(prediction, truth), weights)
    crps_after = _weighted_mean(
        _crps(
            prediction,
            truth,
            SelfCalibration(tuple(edges), tuple(factors), overall, None).factor_at(distance),
        ),
        weights,
    )
    intervals_kept = crps_after <= (1 + options.crps_tolerance) * crps_before
    if (
        not intervals_kept
    ):  # a wider (or narrower) interval that costs sharpness beyond the tolerance is not worth it
        factors, overall = [1.0] * len(factors), 1.0
    interim = SelfCalibration(tuple(edges), tuple(factors), overall, None)
    rescaled = interim.apply(prediction, distance)
    probability = None
    if options.probability != "none":
        pooled, _ = pool_predictions([rescaled], [truth])
        probabilities, observed = probabilities_and_observed_bins(pooled, truth)
        if options.probability == "vector" and observed.size >= options.vector_minimum:
            probability = VectorScaling.fit(probabilities, observed, penalty=options.vector_penalty)
        else:
            probability = TemperatureScaling.fit(probabilities, observed)
    fitted = replace(interim, probability=probability)
    after = _interval_and_bins_scores(fitted.apply(prediction, distance), truth, weights, options.level)
    before["crps"], after["crps"] = (
        round(crps_before, 5),
        round(crps_after if intervals_kept else crps_before, 5),
    )
    return replace(
        fitted,
        scores={
            "pseudo_targets": int(truth.size),
            "std_factors_kept": bool(intervals_kept),
            "before": before,
            "after": after,
        },
    )


def pseudo_predictions(
    model, task: Task, options: SelfCalibrationOptions
) -> tuple[xr.Dataset, np.ndarray, np.ndarray, np.ndarray, int]:
    """``model``'s predictions of one or more pseudo-tasks of ``task`` (:func:`pseudo_task`, seeds
    ``options.seed + draw``; more draws while fewer than ``2 * minimum_targets`` pseudo-targets and
    ``max_repeats`` allows), pooled along ``target``, with their truths, distances to the nearest
    remaining context and weights ``[n_pseudo]``, and the number of draws."""
    predictions, truths, distances, weights = [], [], [], []
    for draw in range(options.max_repeats):
        pseudo, weight = pseudo_task(task, replace(options, seed=options.seed + draw))
        prediction = model.predict(pseudo)
        predictions.append(
            prediction.drop_vars([name for name in prediction.coords if name not in POOLED_COORDINATES])
        )
        truths.append(pseudo.target_values)
        distances.append(distance_to_nearest_context(pseudo))
        weights.append(weight)
        if sum(truth.size for truth in truths) >= 2 * options.minimum_targets:
            break
    pooled = (
        xr.concat(predictions, dim="target", combine_attrs="override")
        if len(predictions) > 1
        else predictions[0]
    )
    return (
        pooled,
        np.concatenate(truths),
        np.concatenate(distances),
        np.concatenate(weights),
        len(predictions),
    )


def self_calibrate(
    model, task: Task, prediction: xr.Dataset | None = None, options: SelfCalibrationOptions | None = None
) -> xr.Dataset:
    """``model``'s prediction of ``task`` calibrated on pseudo-targets of ``task``'s own contexts.

    ``prediction``: the model's prediction of ``task`` when already made. The attribute
    ``self_calibration`` (JSON) records the fit, the pseudo-target count and the before/after
    scores on them, or why nothing was fitted; ``self_calibration_seconds`` its cost.
    """
    options = options or SelfCalibrationOptions()
    prediction = model.predict(task) if prediction is None else prediction
    started = time.perf_counter()
    try:
        pooled, truth, distance, weights, draws = pseudo_predictions(model, task, options)
    except ValueError as error:
        return prediction.assign_attrs(
            self_calibration=json.dumps({"method": "none", "reason": str(error)}),
            self_calibration_seconds=0.0,
        )
    fitted = fit_self_calibration(pooled, truth, distance, weights, options)
    if fitted is None:
        reason = (
            f"{truth.size} pseudo-targets in {draws} draws, fewer than "
            f"minimum_targets={options.minimum_targets}"
        )
        return prediction.assign_attrs(
            self_calibration=json.dumps({"method": "none", "reason": reason}),
            self_calibration_seconds=time.perf_counter() - started,
        )
    fitted = replace(fitted, scores={**fitted.scores, "draws": draws})
    calibrated = fitted.apply(prediction, distance_to_nearest_context(task))
    return calibrated.assign_attrs(
        self_calibration=json.dumps(fitted.to_dict()), self_calibration_seconds=time.perf_counter() - started
    )


@dataclass
class SelfCalibrated:
    """Any model whose predictions calibrate themselves (:func:`self_calibrate`); named ``MODEL+self``."""

    model: object
    options: SelfCalibrationOptions = field(default_factory=SelfCalibrationOptions)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.model.name}+self"

    @property
    def checkpoint_sha256(self) -> str:
        """The wrapped model's checkpoint, if any."""
        return getattr(self.model, "checkpoint_sha256", "")

    def predict(self, task: Task) -> xr.Dataset:
        """The wrapped model's prediction of ``task``, self-calibrated; ``model`` attribute ``NAME+self``."""
        prediction = self_calibrate(self.model, task, options=self.options)
        return prediction.assign_attrs(
            model=self.name,
            predict_seconds=float(prediction.attrs.get("predict_seconds", 0.0))
            + float(prediction.attrs["self_calibration_seconds"]),
        )
