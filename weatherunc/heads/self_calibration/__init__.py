"""Self-calibration: each prediction is calibrated on pseudo-gaps of its own observations.

In gap filling the observed part of the very field being filled is labelled data from this
radar, this weather, this moment. :func:`pseudo_task` hides discs of the task's contexts and turns
them into pseudo-targets, predicted from the remaining contexts by the same model; discs are
centred on random contexts with radii drawn from the real targets' distances to their nearest
context (times a factor from ``disc_radius_factors``; a model may carry options of its own,
:func:`model_options`), and each pseudo-target is weighted so that the distribution of distances
to the nearest remaining context matches the real targets' (importance weights per distance bin).

:func:`fit_self_calibration` then fits, on the pseudo-targets:

- the intervals: a std factor per distance bin, the smallest on a grid whose randomised-PIT
  coverage of the central 90 % interval reaches 0.9 (split conformal calibration of the
  interval, Vovk et al. 2005; conditioned on the distance to the nearest observation as in the
  local spatial conformal prediction of Mao, Martin & Reich 2024), shrunk towards the factor of
  all pseudo-targets by ``shrinkage`` pseudo-counts; bins with too few pseudo-targets, and
  distances beyond the last bin, take the factor of all pseudo-targets; the factors are dropped
  when the pseudo-targets' coverage is within ``evidence_z`` standard errors of the level (discs
  as clusters), when they raise the pseudo-targets' CRPS by more than ``crps_tolerance``, or
  when they raise the squared error of the rate's mean by more than ``mean_error_tolerance``
  (under a log-like transform the mean grows as ``exp(std^2 / 2)``); with ``guards=False``
  (:data:`COVERAGE_FIRST_OPTIONS`) they are always kept;
- the rain-bin probabilities (after the std factors): vector scaling with a fixed L2 penalty (a
  per-radar bias is what its biases absorb), or temperature scaling with fewer pseudo-targets
  (Guo et al. 2017), fitted with the pseudo-targets weighted to the real targets' mix of most
  probable bins (:func:`~weatherunc.heads.self_calibration.pseudo_targets.predicted_bin_weights`)
  and kept only if it carries over from one half of the discs to the other;

with a fall-back to no calibration below ``minimum_targets`` pseudo-targets. A task too small for
enough pseudo-targets in one draw, or (``evidence_draws``) whose pseudo-targets' coverage is
inconclusive, is drawn again, each draw hiding contexts no earlier draw hid
(:func:`pseudo_predictions`). :func:`self_calibrate`
applies the fit to the real prediction and records what was fitted, on how many pseudo-targets,
and the before/after scores on them, in the attribute ``self_calibration`` (JSON).
:class:`SelfCalibrated` wraps any model so that its ``predict`` does all of this
(:func:`self_calibrated` picks :class:`SelfCalibratedSharingFit` for a model that can share one
fit among the tiles of a frame). A rolling
window of earlier frames of the same place (``history``, or :class:`EarlierFrame` grids in
:class:`SelfCalibrated`) adds their pseudo-targets, weighted to the current targets' distances.

Modules: :mod:`~weatherunc.heads.self_calibration.options`,
:mod:`~weatherunc.heads.self_calibration.pseudo_targets`,
:mod:`~weatherunc.heads.self_calibration.fitting`,
:mod:`~weatherunc.heads.self_calibration.history` and
:mod:`~weatherunc.heads.self_calibration.calibrate`.
"""

from weatherunc.heads.self_calibration.calibrate import (
    SelfCalibrated,
    SelfCalibratedSharingFit,
    self_calibrate,
    self_calibrated,
    self_calibration_record,
)
from weatherunc.heads.self_calibration.fitting import FACTOR_GRID, SelfCalibration, fit_self_calibration
from weatherunc.heads.self_calibration.history import EarlierFrame
from weatherunc.heads.self_calibration.options import (
    COVERAGE_FIRST_OPTIONS,
    NEURAL_PROCESS_OPTIONS,
    SelfCalibrationOptions,
    distance_bin_index,
    model_options,
)
from weatherunc.heads.self_calibration.pseudo_targets import (
    POOLED_COORDINATES,
    PseudoTargets,
    pooled_pseudo_targets,
    pseudo_predictions,
    pseudo_task,
)

__all__ = [
    "COVERAGE_FIRST_OPTIONS",
    "EarlierFrame",
    "FACTOR_GRID",
    "NEURAL_PROCESS_OPTIONS",
    "POOLED_COORDINATES",
    "PseudoTargets",
    "SelfCalibrated",
    "SelfCalibratedSharingFit",
    "SelfCalibration",
    "SelfCalibrationOptions",
    "distance_bin_index",
    "fit_self_calibration",
    "model_options",
    "pooled_pseudo_targets",
    "pseudo_predictions",
    "pseudo_task",
    "self_calibrate",
    "self_calibrated",
    "self_calibration_record",
]
