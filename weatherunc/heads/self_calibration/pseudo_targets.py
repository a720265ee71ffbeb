"""Pseudo-targets: discs of a task's own contexts hidden and predicted from the remaining ones.

Discs are centred on random contexts with radii drawn from the real targets' distances to their
nearest context, and each pseudo-target is weighted so that the distribution of distances to the
nearest remaining context matches the real targets' (importance weights per distance bin; Shimodaira
2000 for importance weighting under covariate shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from weatherunc import conventions
from weatherunc.evaluation import distance_to_nearest_context, interval_coverage
from weatherunc.heads.bins import with_bin_probabilities
from weatherunc.heads.self_calibration.evidence import clustered_coverage
from weatherunc.heads.self_calibration.options import SelfCalibrationOptions, distance_bin_index
from weatherunc.tasks import Task

#: Coordinates kept when the predictions of several pseudo-tasks are pooled (the others differ).
POOLED_COORDINATES = (
    conventions.QUANTILE,
    conventions.THRESHOLD,
    conventions.BIN,
    conventions.BIN_LOWER,
    conventions.BIN_UPPER,
)


def pseudo_task(
    task: Task,
    options: SelfCalibrationOptions,
    real_distance: np.ndarray | None = None,
    hideable: np.ndarray | None = None,
) -> tuple[Task, np.ndarray, np.ndarray, np.ndarray]:
    """Hide discs of ``task``'s contexts; returns the pseudo-task (the hidden contexts as targets,
    with their values as truth), its importance weights ``[n_pseudo]`` (mean 1) that match the
    pseudo-targets' distances to the nearest remaining context to the real targets', the number
    of the disc that hid each pseudo-target ``[n_pseudo]`` (the pseudo-targets of one disc are
    correlated: the fit counts discs, not targets, as independent evidence), and the indices of
    the hidden contexts in ``task`` ``[n_pseudo]``.

    ``real_distance`` ``[n]`` [km]: the distances of the targets to calibrate for, when they are not
    ``task``'s own (an earlier frame of the same place drawn for a later frame's targets).
    ``hideable`` ``[n_context]`` (bool): the contexts a disc may hide (default: all); discs are
    centred on them and hide only them, at most all of them.
    """
    rng = np.random.default_rng(options.seed)
    real = distance_to_nearest_context(task) if real_distance is None else np.asarray(real_distance)
    if real.size == 0:
        raise ValueError("real_distance: no target distance to match")
    hideable = np.ones(task.n_context, dtype=bool) if hideable is None else np.asarray(hideable, dtype=bool)
    budget = min(
        options.max_pseudo_targets, int(options.pseudo_fraction * task.n_context), int(hideable.sum())
    )
    if budget < 1 or task.n_context - budget < 1:
        raise ValueError(f"task: {task.n_context} contexts are too few for pseudo-targets")
    tree = cKDTree(task.context_coordinates)
    disc = np.full(task.n_context, -1, dtype=np.int64)
    centres = np.flatnonzero(hideable)
    attempts = 10 * budget + 10  # discs drawn at most; most hide a few contexts, some none
    radii = rng.choice(real, size=attempts) * rng.uniform(*options.disc_radius_factors, size=attempts)
    for number, radius in enumerate(radii):
        if (disc >= 0).sum() >= budget:
            break
        centre = task.context_coordinates[centres[rng.integers(centres.size)]]
        inside = np.asarray(tree.query_ball_point(centre, r=max(radius, 1e-9)), dtype=np.int64)
        # a context already hidden keeps its first disc; one not hideable is never hidden
        inside = inside[(disc[inside] < 0) & hideable[inside]]
        room = budget - int((disc >= 0).sum())
        disc[inside[: max(room, 1)] if inside.size > room else inside] = number
    hidden = disc >= 0
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
    real_bins, pseudo_bins = (
        distance_bin_index(real, edges),
        distance_bin_index(distance_to_nearest_context(pseudo), edges),
    )
    bins = len(edges) - 1
    real_share = np.bincount(real_bins[real_bins >= 0], minlength=bins) / max(1, int((real_bins >= 0).sum()))
    pseudo_share = np.bincount(pseudo_bins[pseudo_bins >= 0], minlength=bins) / max(
        1, int((pseudo_bins >= 0).sum())
    )
    ratio = np.divide(real_share, pseudo_share, out=np.zeros(bins), where=pseudo_share > 0)
    weights = np.where(pseudo_bins >= 0, ratio[np.maximum(pseudo_bins, 0)], 0.0)
    weights = weights / weights.mean() if weights.sum() > 0 else np.ones(pseudo.n_target)
    return pseudo, weights, np.unique(disc[hidden], return_inverse=True)[1], np.flatnonzero(hidden)


@dataclass(frozen=True)
class PseudoTargets:
    """A model's predictions of pseudo-targets, pooled over draws along ``target``.

    ``truth`` [mm/h], ``distance`` [km] to the nearest remaining context, importance ``weights``
    and ``discs`` (the hiding disc's number, unique over draws), each ``[n_pseudo]``; ``draws``:
    how many pseudo-tasks were drawn.
    """

    prediction: xr.Dataset
    truth: np.ndarray
    distance: np.ndarray
    weights: np.ndarray
    discs: np.ndarray
    draws: int


def pooled_pseudo_targets(parts: Sequence[PseudoTargets]) -> PseudoTargets:
    """One :class:`PseudoTargets` of several (draws, or earlier frames of the same place): the
    predictions concatenated along ``target``, the disc numbers offset so that they stay unique."""
    if not parts:
        raise ValueError("parts: no pseudo-targets to pool")
    offsets = np.cumsum([0] + [int(part.discs.max()) + 1 if part.discs.size else 0 for part in parts[:-1]])
    return PseudoTargets(
        xr.concat([part.prediction for part in parts], dim="target", combine_attrs="override")
        if len(parts) > 1
        else parts[0].prediction,
        np.concatenate([part.truth for part in parts]),
        np.concatenate([part.distance for part in parts]),
        np.concatenate([part.weights for part in parts]),
        np.concatenate([part.discs + offset for part, offset in zip(parts, offsets)]),
        sum(part.draws for part in parts),
    )


def conclusive(pseudo: PseudoTargets, options: SelfCalibrationOptions) -> bool:
    """Whether ``pseudo``'s weighted coverage of the central ``level`` interval as predicted decides
    the std factors: off ``level`` by more than ``evidence_z`` clustered standard errors
    (:func:`~weatherunc.heads.self_calibration.fitting.clustered_coverage`), or within
    ``coverage_tolerance`` of it; always, with ``guards=False`` (the evidence decides nothing)."""
    if not options.guards:
        return True
    covered = interval_coverage(pseudo.prediction, pseudo.truth, options.level).values
    coverage, error = clustered_coverage(covered, pseudo.weights, pseudo.discs)
    distance = abs(coverage - options.level)
    return distance > options.evidence_z * error or distance <= options.coverage_tolerance


def pseudo_predictions(
    model, task: Task, options: SelfCalibrationOptions, real_distance: np.ndarray | None = None
) -> PseudoTargets:
    """``model``'s predictions of one or more pseudo-tasks of ``task`` (:func:`pseudo_task`, seeds
    ``options.seed + draw``; more draws while fewer than ``2 * minimum_targets`` pseudo-targets
    or, up to ``evidence_draws`` draws, while the pooled coverage is not :func:`conclusive`, as long
    as ``max_repeats`` allows and contexts not hidden before remain: a context is a pseudo-target
    once, so that the discs stay independent pieces of evidence and the bin scaler's halves share
    no truth), pooled; ``real_distance`` as for :func:`pseudo_task`.

    Drawing again only while the evidence is inconclusive looks at the data more than once, which
    raises the chance that the guard keeps factors fitted to noise (optional stopping; Armitage,
    McPherson & Rowe 1969); the CRPS and mean guards still apply to them."""
    parts: list[PseudoTargets] = []
    hideable = np.ones(task.n_context, dtype=bool)
    for draw in range(options.max_repeats):
        if not hideable.any():
            break
        pseudo, weights, discs, hidden = pseudo_task(
            task, replace(options, seed=options.seed + draw), real_distance, hideable
        )
        hideable[hidden] = False
        prediction = model.predict(pseudo)
        parts.append(
            PseudoTargets(
                prediction.drop_vars([name for name in prediction.coords if name not in POOLED_COORDINATES]),
                pseudo.target_values,
                distance_to_nearest_context(pseudo),
                weights,
                discs,
                1,
            )
        )
        if sum(part.truth.size for part in parts) >= 2 * options.minimum_targets and (
            len(parts) >= options.evidence_draws or conclusive(pooled_pseudo_targets(parts), options)
        ):
            break
    return pooled_pseudo_targets(parts)


def _most_probable_bins(prediction: xr.Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """The most probable rain bin of each predicted point with finite probabilities, the mask of
    those points ``[n]`` (every point of a target or gridded prediction, flattened), and the bin count."""
    probabilities = with_bin_probabilities(prediction)[conventions.BIN_PROBABILITY]
    count = probabilities.sizes[conventions.BIN]
    values = probabilities.transpose(..., conventions.BIN).values.reshape(-1, count)
    known = np.all(np.isfinite(values), axis=1)
    return np.argmax(values[known], axis=1), known, count


def predicted_bin_weights(pseudo: xr.Dataset, real: xr.Dataset, max_weight: float = 10.0) -> np.ndarray:
    """Importance weights ``[n_pseudo]`` (mean 1 over the pseudo-targets with finite probabilities, 0
    elsewhere) that give the pseudo-targets' most probable bin, as ``pseudo`` predicts it, the
    distribution that the real targets' has in ``real``: a covariate-shift correction in the
    model's own output (Shimodaira 2000), so that a probability scaler fitted on the pseudo-targets
    is fitted where the real predictions lie. Bins of the real targets that no pseudo-target has
    are left out; the weights are truncated at ``max_weight`` times their mean and normalised
    again, in turn until none exceeds it (Ionides 2008, truncated importance sampling), which is
    possible only where at least a share ``1 / max_weight`` of the pseudo-targets has weight:
    where fewer have, the weights stay concentrated on them, and the fit's effective sample size
    (``probability_effective_targets``) says so."""
    pseudo_bins, pseudo_known, count = _most_probable_bins(pseudo)
    real_bins, _, _ = _most_probable_bins(real)
    weights = np.zeros(pseudo_known.size)
    if pseudo_bins.size == 0 or real_bins.size == 0:
        weights[pseudo_known] = 1.0
        return weights
    real_share = np.bincount(real_bins, minlength=count) / real_bins.size
    pseudo_share = np.bincount(pseudo_bins, minlength=count) / pseudo_bins.size
    ratio = np.divide(real_share, pseudo_share, out=np.zeros(count), where=pseudo_share > 0)
    known_weights = ratio[pseudo_bins]
    if known_weights.sum() <= 0:
        known_weights = np.ones(pseudo_bins.size)
    for _ in range(500):  # truncate and normalise until no weight exceeds max_weight x the mean
        known_weights = known_weights / known_weights.mean()
        if known_weights.max() <= max_weight * (1 + 1e-3):
            break
        known_weights = np.minimum(known_weights, max_weight)
    weights[pseudo_known] = known_weights / known_weights.mean()
    return weights
