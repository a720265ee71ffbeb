"""The options of self-calibration and the distance bins it fits std factors in."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from weatherunc.plain_options import dataclass_values


@dataclass(frozen=True)
class SelfCalibrationOptions:
    """How pseudo-targets are drawn and what is fitted on them.

    ``pseudo_fraction``: at most this share of the contexts is hidden (and at most
    ``max_pseudo_targets``), in discs whose radii are the real targets' distances to their
    nearest context times a factor drawn uniformly from ``disc_radius_factors`` (low, high);
    ``distance_edges_km``: the bins of distance to the nearest context;
    ``level``: the central interval whose coverage the std factors calibrate; ``probability``:
    the scaler of the bin probabilities (``"vector"`` falls back to temperature below
    ``vector_minimum`` pseudo-targets). A task with fewer contexts than give ``2 *
    minimum_targets`` pseudo-targets in one draw (a small station network) is drawn again with
    other seeds (each context hidden at most once), up to ``max_repeats`` draws, and the draws'
    pseudo-targets are pooled. The std factors are kept only if the pseudo-targets' coverage
    differs from ``level`` by more than ``evidence_z`` of its standard errors (the discs as
    clusters: a frame with few discs is little evidence; ``evidence="per_bin"``: tested in each
    distance bin, a bin without evidence keeping its std, where ``"pooled"`` tests all
    pseudo-targets at once) and if they raise the pseudo-targets' weighted CRPS by at most ``crps_tolerance``
    (relative) and the weighted squared error of the rate's mean by at most ``mean_error_tolerance``
    (relative: under a log-like transform a wider std raises the mean, which can run far above the
    truth where the std is large); otherwise the intervals are left as the model gave them. With
    ``probability_weighted``, the bin scaler's NLL weighs the pseudo-targets with their importance
    weights (the real targets' distance mix), as the std factors do (off by default, chosen on the
    validation frames: ``benchmarks/self_calibration_validation.py``). With
    ``probability_cross_validated``, the bin scaler is kept only if, fitted on one half of the discs
    (even and odd numbers), it lowers the bin NLL of the other half (both ways, pooled). With
    ``probability_matching="predicted_bin"`` (the default, chosen on the validation frames), the bin
    scaler weighs each pseudo-target so that the pseudo-targets' most probable bins (as predicted)
    are distributed as the real targets' are
    (:func:`~weatherunc.heads.self_calibration.pseudo_targets.predicted_bin_weights`; weights
    truncated at ``max_matching_weight`` times their mean); ``"none"`` weighs them alike. A bin
    scaler is fitted only on at least ``minimum_targets`` effective pseudo-targets (Kish's
    ``(sum w)^2 / sum w^2`` of its weights). With ``keep_mean``, the std factors keep each
    target's rate mean (the point forecast) and move its median
    (:meth:`~weatherunc.prediction.Prediction.rescaled`), where by default they keep the median and,
    under a log-like transform, raise the mean with the std; the factors are chosen by the
    coverage they give with the median kept either way, and the CRPS and mean guards score them as
    applied. Keeping the mean suits factors near 1: with a wide transformed std, a large factor
    moves the median so far down (and a small one so far up) that the interval as applied covers
    less, not more. With ``guards=False`` none of the three guards (evidence, CRPS, mean) applies:
    the std factors that cover ``level`` on the pseudo-targets are always kept, for intervals that
    hold on a radar the model never saw at some cost in CRPS (:data:`COVERAGE_FIRST_OPTIONS`); the
    guards' own options (``evidence``, ``evidence_z``, ``evidence_draws``, ``coverage_tolerance``,
    ``crps_tolerance``, ``mean_error_tolerance``) then have no effect.
    """

    pseudo_fraction: float = 0.3
    max_pseudo_targets: int = 3000
    disc_radius_factors: tuple[float, ...] = (1.0, 3.0)
    distance_edges_km: tuple[float, ...] = (0.0, 1.5, 3.0, 6.0, 12.0, 24.0, 48.0)
    level: float = 0.9
    shrinkage: float = 50.0
    minimum_per_bin: int = 30
    minimum_targets: int = 50
    probability: Literal["vector", "temperature", "none"] = "vector"
    vector_penalty: float = 0.01
    vector_minimum: int = 500
    max_repeats: int = 8
    evidence_draws: int = 1
    coverage_tolerance: float = 0.02
    crps_tolerance: float = 0.01
    mean_error_tolerance: float = 0.01
    evidence_z: float = 2.0
    evidence: Literal["pooled", "per_bin"] = "pooled"
    probability_weighted: bool = False
    probability_cross_validated: bool = True
    probability_matching: Literal["none", "predicted_bin"] = "predicted_bin"
    max_matching_weight: float = 10.0
    keep_mean: bool = False
    guards: bool = True
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SelfCalibrationOptions:
        """Options from plain values (a job's YAML ``calibration.self.options``): lists become tuples;
        ``ValueError`` naming a field the options do not have."""
        return cls(**dataclass_values(cls, options))

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults, by name (recorded with each fit)."""
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if getattr(self, item.name) != item.default
        }

    def __post_init__(self) -> None:
        for item in fields(self):  # a number given as text or a float for a count: named, not a TypeError
            value, kind = getattr(self, item.name), str(item.type)
            wrong = {
                "int": isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral),
                "float": isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real),
                "bool": not isinstance(value, bool | np.bool_),
            }.get(kind, False)
            if wrong:
                raise ValueError(f"{item.name} must be of type {kind}, got {value!r}")
            if kind in ("int", "float", "bool"):  # numpy numbers as Python's, so that records are JSON
                object.__setattr__(self, item.name, {"int": int, "float": float, "bool": bool}[kind](value))
        for name in ("distance_edges_km", "disc_radius_factors"):  # sequences of numbers, as floats
            given = getattr(self, name)
            try:
                if isinstance(given, str):
                    raise TypeError(name)  # a text would be read a character at a time
                numbers_given = tuple(float(number) for number in given)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name} must be a sequence of numbers, got {given!r}") from error
            if not np.all(np.isfinite(numbers_given[:-1] if name == "distance_edges_km" else numbers_given)):
                raise ValueError(f"{name} must be finite numbers, got {given!r}")
            object.__setattr__(self, name, numbers_given)
        if (
            len(self.disc_radius_factors) != 2
            or not 0 < self.disc_radius_factors[0] <= self.disc_radius_factors[1]
        ):
            raise ValueError(
                f"disc_radius_factors must be two numbers 0 < low <= high, got {self.disc_radius_factors!r}"
            )
        if self.probability not in ("vector", "temperature", "none"):
            raise ValueError(
                f"probability must be 'vector', 'temperature' or 'none', got {self.probability!r}"
            )
        for name in ("vector_penalty", "shrinkage"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_pseudo_targets", "minimum_targets", "minimum_per_bin", "vector_minimum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.pseudo_fraction < 1:
            raise ValueError(f"pseudo_fraction must be in (0, 1), got {self.pseudo_fraction}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        if self.crps_tolerance < 0:
            raise ValueError(f"crps_tolerance must be >= 0, got {self.crps_tolerance}")
        if self.mean_error_tolerance < 0:
            raise ValueError(f"mean_error_tolerance must be >= 0, got {self.mean_error_tolerance}")
        if self.evidence_z < 0:
            raise ValueError(f"evidence_z must be >= 0, got {self.evidence_z}")
        if self.evidence not in ("pooled", "per_bin"):
            raise ValueError(f"evidence must be 'pooled' or 'per_bin', got {self.evidence!r}")
        if self.probability_matching not in ("none", "predicted_bin"):
            raise ValueError(
                f"probability_matching must be 'none' or 'predicted_bin', got {self.probability_matching!r}"
            )
        if self.max_matching_weight <= 1:
            raise ValueError(f"max_matching_weight must be > 1, got {self.max_matching_weight}")
        if self.max_repeats < 1:
            raise ValueError(f"max_repeats must be >= 1, got {self.max_repeats}")
        if not 1 <= self.evidence_draws <= self.max_repeats:
            raise ValueError(
                f"evidence_draws must be in [1, max_repeats={self.max_repeats}], got {self.evidence_draws}"
            )
        if not 0 <= self.coverage_tolerance < 1:
            raise ValueError(f"coverage_tolerance must be in [0, 1), got {self.coverage_tolerance}")
        if (
            list(self.distance_edges_km) != sorted(set(self.distance_edges_km))
            or len(self.distance_edges_km) < 2
        ):
            raise ValueError(f"distance_edges_km must increase strictly, got {self.distance_edges_km}")


def distance_bin_index(distance: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Index of each distance's bin ``[n]``; -1 beyond the last edge."""
    index = np.searchsorted(np.asarray(edges), distance, side="right") - 1
    return np.where(distance >= edges[-1], -1, np.clip(index, 0, len(edges) - 2))


#: The neural processes' own self-calibration options (their ``self_calibration_defaults``): smaller
#: discs, chosen for the shipped ANP and ConvNP on the validation frames
#: (``benchmarks/self_calibration_validation.py --option disc_radius_factors=[1,1.5]``; the GP keeps
#: the defaults) and extended, without validation of their own, to every model of those two
#: classes (the CNP, the ablations, the GP-prior ConvNP) and to ensembles of them.
NEURAL_PROCESS_OPTIONS: Mapping[str, Any] = MappingProxyType({"disc_radius_factors": (1.0, 1.5)})


#: Self-calibration that puts the 90 % intervals first (``options: {guards: false, keep_mean: true}``
#: in a job): the std factors fitted on the pseudo-targets are kept whatever their evidence and their
#: cost in CRPS, and each target keeps its rate mean. Chosen on the validation windows of a radar no
#: model saw (``benchmarks/self_calibration_validation.py --shifted``), where the defaults drop the
#: factors of an under-covering model; it widens the intervals there at a cost in CRPS
#: (``benchmarks/results/self_calibration_validation_shifted_coverage_first*.md``). Meant for a neural
#: process on a radar it never saw: where intervals already hold (the GP on the validation frames),
#: one frame's pseudo-targets move them away from the level as often as towards it.
COVERAGE_FIRST_OPTIONS: Mapping[str, Any] = MappingProxyType({"guards": False, "keep_mean": True})


def model_options(
    model: object, options: SelfCalibrationOptions | Mapping[str, Any] | None = None
) -> SelfCalibrationOptions:
    """The options that self-calibrate ``model``.

    ``options`` given as :class:`SelfCalibrationOptions` are used as they are. Otherwise the
    model's own defaults (its ``self_calibration_defaults``, a mapping of fields chosen for that
    kind of model on the validation frames, e.g. :data:`NEURAL_PROCESS_OPTIONS`; none for a model
    without it) are updated by the mapping ``options`` (a job's ``calibration.self.options``),
    field by field.
    """
    if isinstance(options, SelfCalibrationOptions):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options must be SelfCalibrationOptions or a mapping, got {type(options).__name__}")
    defaults = getattr(model, "self_calibration_defaults", None) or {}
    return SelfCalibrationOptions.from_options({**defaults, **(options or {})})
