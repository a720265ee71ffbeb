"""Post-hoc calibration fitted on held-out validation tasks, never on test tasks.

One hook, as in torch-uncertainty's ``post_processing/calibration/scaler.py``: each scaler
maps log-probabilities ``[n, bins]`` to new logits with ``_scale``; the softmax of those is the
calibrated forecast.

- :class:`TemperatureScaling`: ``logits / T`` (Guo et al. 2017, "On Calibration of Modern
  Neural Networks", section 4.2), ``T`` minimising the validation NLL.
  :func:`lowest_ece_temperature` is a diagnostic beside it: the ``T`` of lowest top-label ECE on
  given predictions, which the NLL minimiser need not be.
- :class:`VectorScaling`: ``w * logits + b`` per bin (Guo et al. 2017, section 4.2), optionally
  with an L2 penalty pulling ``w`` to 1 and ``b`` to 0 (as Kull et al. 2019, "Beyond temperature
  scaling: Obtaining well-calibrated multiclass probabilities with Dirichlet calibration", regularise
  their matrix and vector scalings), its strength chosen by leave-one-group-out cross-validation
  (:func:`fit_vector_scaling`). Unpenalised, the biases learn the calibration events' bin
  frequencies: a bin those events never observed is driven towards probability zero.
- :class:`StdScaling`: one factor on the Gaussian output's standard deviation (Levi et al.
  2022, "Evaluating and Calibrating Uncertainty Prediction in Regression Tasks"; Laves et al.
  2020), the factor of largest likelihood; for a Gaussian it is closed form,
  ``s^2 = mean(((z - mu) / sigma)^2)``, and targets observed dry count with their probability
  mass below the censoring point (Tobin 1958).

All fits run in float64 (a float32 fit can stall at ``T = 1``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from scipy import optimize, special

from weatherunc import conventions
from weatherunc.metrics import top_label_ece
from weatherunc.prediction import Prediction

PROBABILITY_FLOOR = 1e-12


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0))


def _nll(logits: np.ndarray, observed: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean (``weights`` ``[n]``: weighted mean) negative log probability of the ``observed`` bins."""
    values = -special.log_softmax(logits, axis=-1)[np.arange(len(observed)), observed]
    return float(np.average(values, weights=weights))


@dataclass(frozen=True)
class ProbabilityScaler:
    """Base: ``apply`` = softmax(``_scale``(log p)). Subclasses set ``method`` and ``_scale``."""

    method: ClassVar[str] = "identity"

    def _scale(self, logits: np.ndarray) -> np.ndarray:
        return logits

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape ``[..., bins]``."""
        return special.softmax(self._scale(_log_probabilities(probabilities)), axis=-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        values = {
            key: (value.tolist() if isinstance(value, np.ndarray) else value)
            for key, value in asdict(self).items()
        }
        return {"method": self.method, **values}


@dataclass(frozen=True)
class TemperatureScaling(ProbabilityScaler):
    """``softmax(log p / T)``."""

    method: ClassVar[str] = "temperature"
    temperature: float = 1.0

    def _scale(self, logits: np.ndarray) -> np.ndarray:
        return logits / self.temperature

    @classmethod
    def fit(
        cls, probabilities: np.ndarray, observed: np.ndarray, *, sample_weight: np.ndarray | None = None
    ) -> TemperatureScaling:
        """``T`` minimising the NLL of ``observed`` bin indices ``[n]`` under ``probabilities`` ``[n,
        bins]`` (with ``sample_weight`` ``[n]``, the weighted mean NLL)."""
        logits, observed = _log_probabilities(probabilities), np.asarray(observed, dtype=np.int64)
        result = optimize.minimize_scalar(
            lambda log_t: _nll(logits / np.exp(log_t), observed, sample_weight),
            bounds=(-4.0, 4.0),
            method="bounded",
            options={"xatol": 1e-6},
        )
        return cls(temperature=float(np.exp(result.x)))


#: Temperatures searched by :func:`lowest_ece_temperature`: 0.1 to 10 in steps of about 1.2 %.
ECE_TEMPERATURE_GRID = np.geomspace(0.1, 10.0, 401)


def lowest_ece_temperature(
    probabilities: np.ndarray,
    observed: np.ndarray,
    *,
    temperatures: np.ndarray = ECE_TEMPERATURE_GRID,
    bins: int = 15,
) -> tuple[float, float]:
    """The temperature of ``temperatures`` with the lowest top-label ECE, and that ECE.

    probabilities ``[n, classes]``, observed ``[n]`` class indices; ECE in ``bins`` equal-width
    confidence bins (:func:`~weatherunc.metrics.top_label_ece`). A diagnostic, never a fit to
    publish: the NLL-minimising temperature (:meth:`TemperatureScaling.fit`) need not minimise the
    ECE, so whether any single temperature reaches an ECE goal on given tasks is answered only by
    searching. The ECE is a step function of the temperature (it moves forecasts between bins),
    hence a grid search rather than a gradient method.
    """
    truth = xr.DataArray(np.asarray(observed, dtype=np.float64), dims="point")
    logits = _log_probabilities(probabilities)
    errors = [
        top_label_ece(
            xr.DataArray(special.softmax(logits / temperature, axis=-1), dims=("point", conventions.BIN)),
            truth,
            bins=bins,
        )
        for temperature in temperatures
    ]
    best = int(np.argmin(errors))
    return float(temperatures[best]), float(errors[best])


@dataclass(frozen=True)
class VectorScaling(ProbabilityScaler):
    """``softmax(w * log p + b)``, one weight and bias per bin; ``penalty`` is the L2 strength it was
    fitted with."""

    method: ClassVar[str] = "vector"
    weights: np.ndarray = field(default_factory=lambda: np.ones(1))
    biases: np.ndarray = field(default_factory=lambda: np.zeros(1))
    penalty: float = 0.0

    def _scale(self, logits: np.ndarray) -> np.ndarray:
        return logits * np.asarray(self.weights) + np.asarray(self.biases)

    @classmethod
    def fit(
        cls,
        probabilities: np.ndarray,
        observed: np.ndarray,
        *,
        penalty: float = 0.0,
        sample_weight: np.ndarray | None = None,
    ) -> VectorScaling:
        """Weights and biases minimising ``NLL + penalty * (sum((w - 1)^2) + sum(b^2))``.

        probabilities ``[n, bins]``, observed ``[n]`` bin indices; the NLL is the mean over the
        ``n`` points (with ``sample_weight`` ``[n]``, the weighted mean). L-BFGS with the exact
        gradient, from ``w = 1, b = 0``.
        """
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        logits, observed = _log_probabilities(probabilities), np.asarray(observed, dtype=np.int64)
        n, bins = logits.shape
        one_hot = np.eye(bins)[observed]
        share = (
            np.full(n, 1.0 / n)
            if sample_weight is None
            else np.asarray(sample_weight) / np.sum(sample_weight)
        )

        def objective(parameters: np.ndarray) -> tuple[float, np.ndarray]:
            weights, biases = parameters[:bins], parameters[bins:]
            scaled = logits * weights + biases
            log_probability = special.log_softmax(scaled, axis=-1)
            residual = (np.exp(log_probability) - one_hot) * share[:, None]  # d NLL / d scaled
            value = -np.sum(share * (log_probability * one_hot).sum(-1)) + penalty * (
                np.sum((weights - 1) ** 2) + np.sum(biases**2)
            )
            gradient = np.concatenate(
                [
                    (residual * logits).sum(0) + 2 * penalty * (weights - 1),
                    residual.sum(0) + 2 * penalty * biases,
                ]
            )
            return float(value), gradient

        result = optimize.minimize(
            objective, np.concatenate([np.ones(bins), np.zeros(bins)]), jac=True, method="L-BFGS-B"
        )
        return cls(weights=result.x[:bins], biases=result.x[bins:], penalty=float(penalty))


#: Penalties searched by :func:`fit_vector_scaling` (0: Guo et al.'s unpenalised vector scaling).
VECTOR_PENALTIES = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def fit_vector_scaling(
    probabilities: np.ndarray,
    observed: np.ndarray,
    groups: np.ndarray,
    *,
    penalties: tuple[float, ...] = VECTOR_PENALTIES,
) -> tuple[VectorScaling, dict[float, float]]:
    """Vector scaling with the penalty of lowest leave-one-group-out NLL, refitted on every point.

    probabilities ``[n, bins]``, observed ``[n]`` bin indices, groups ``[n]`` labels (at least two
    distinct): each group is held out in turn, the scaling fitted on the others with each penalty,
    and the held-out NLL summed over groups (so each point counts once). Group by what the scaling
    must generalise across: by event (dataset) when it will be applied to other events, since
    points of one event share its bin frequencies and a split within events cannot see the shift.
    Returns the scaling and the cross-validated NLL (mean per point) of each penalty.
    """
    groups = np.asarray(groups)
    labels = np.unique(groups)
    if groups.shape != (len(observed),):
        raise ValueError(
            f"groups must have one label per point: shape {groups.shape}, {len(observed)} points"
        )
    if len(labels) < 2:
        raise ValueError(f"groups: cross-validation needs at least two groups, got {len(labels)}")
    observed = np.asarray(observed, dtype=np.int64)
    held_out_nll: dict[float, float] = {}
    for penalty in penalties:
        total = 0.0
        for label in labels:
            held = groups == label
            scaled = VectorScaling.fit(probabilities[~held], observed[~held], penalty=penalty).apply(
                probabilities[held]
            )
            total -= float(
                np.sum(np.log(np.clip(scaled[np.arange(held.sum()), observed[held]], PROBABILITY_FLOOR, 1.0)))
            )
        held_out_nll[float(penalty)] = total / len(observed)
    best = min(held_out_nll, key=held_out_nll.__getitem__)
    return VectorScaling.fit(probabilities, observed, penalty=best), held_out_nll


@dataclass(frozen=True)
class StdScaling:
    """Multiply the Gaussian output's standard deviation (transformed space) by ``factor``."""

    method: ClassVar[str] = "std"
    factor: float = 1.0

    @classmethod
    def fit(
        cls, mean: np.ndarray, std: np.ndarray, observed: np.ndarray, dry: np.ndarray | None = None
    ) -> StdScaling:
        """The factor of largest likelihood of the finite ``observed`` (transformed) under
        ``N(mean, (factor * std)^2)``, all ``[n]``.

        ``dry`` ``[n]`` (bool): targets observed dry under a transform censored at zero, whose
        ``observed`` is the censoring point ``g(0)``; each counts with its probability mass
        ``log Phi((g(0) - mean) / (factor * std))`` (Tobin 1958), the others with the density. Without
        dry targets the maximiser is closed form, ``sqrt(mean(((z - mu) / sigma)^2))``; with them it is
        searched over ``log factor`` in ``[log 0.1, log 10]`` (a bounded 1-D minimisation): the
        closed form counted each dry target as an exact value at ``g(0)`` and was biased by them
        (too narrow where dry targets lie near the predicted mean, too wide where far below it).
        """
        known = np.isfinite(observed) & np.isfinite(mean) & np.isfinite(std)
        standardised = (observed[known] - mean[known]) / std[known]
        closed_form = float(np.sqrt(np.mean(standardised**2)))
        censored = np.zeros(standardised.shape, dtype=bool) if dry is None else np.asarray(dry)[known]
        if not censored.any():
            return cls(factor=closed_form)
        wet, below = standardised[~censored], standardised[censored]

        def negative_log_likelihood(log_factor: float) -> float:
            factor = np.exp(log_factor)
            density = np.sum(-0.5 * (wet / factor) ** 2) - wet.size * log_factor
            return -(density + np.sum(special.log_ndtr(below / factor)))

        best = optimize.minimize_scalar(
            negative_log_likelihood, bounds=(np.log(0.1), np.log(10.0)), method="bounded"
        )
        return cls(factor=float(np.exp(best.x)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"method": self.method, "factor": self.factor}


SCALERS: dict[str, type] = {"temperature": TemperatureScaling, "vector": VectorScaling}


@dataclass(frozen=True)
class Calibration:
    """What is applied to a model's predictions: a probability scaler and/or a std factor, with provenance:
    ``fitted_on`` (the data), and the ``model`` and ``checkpoint_sha256`` it was fitted for (empty
    where not recorded, as in files written before they were)."""

    probability: ProbabilityScaler | None = None
    std: StdScaling | None = None
    fitted_on: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    checkpoint_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``calibration.json``)."""
        return {
            "probability": None if self.probability is None else self.probability.to_dict(),
            "std": None if self.std is None else self.std.to_dict(),
            "fitted_on": self.fitted_on,
            "scores": self.scores,
            **({"model": self.model} if self.model else {}),
            **({"checkpoint_sha256": self.checkpoint_sha256} if self.checkpoint_sha256 else {}),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; unknown methods are an error."""
        probability = None
        if values.get("probability"):
            spec = dict(values["probability"])
            method = spec.pop("method")
            if method not in SCALERS:
                raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(SCALERS)}")
            if method == "vector":
                spec = {
                    key: (float(value) if key == "penalty" else np.asarray(value))
                    for key, value in spec.items()
                }
            probability = SCALERS[method](**spec)
        std = StdScaling(factor=float(values["std"]["factor"])) if values.get("std") else None
        return cls(
            probability=probability,
            std=std,
            fitted_on=values.get("fitted_on", ""),
            scores=values.get("scores", {}),
            model=str(values.get("model") or ""),
            checkpoint_sha256=str(values.get("checkpoint_sha256") or ""),
        )

    def save(self, path: Path) -> Path:
        """Write ``calibration.json`` whole or not at all (a temporary file beside it, then renamed)."""
        path = Path(path)
        temporary = path.with_name(f".{path.name}.partial")
        temporary.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read ``calibration.json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def attrs(self) -> dict[str, Any]:
        """Attributes that record the calibration in an output dataset."""
        attrs: dict[str, Any] = {"calibration_fitted_on": self.fitted_on}
        if self.probability is not None:
            attrs["calibration_method"] = self.probability.method
            if isinstance(self.probability, TemperatureScaling):
                attrs["calibration_temperature"] = self.probability.temperature
            if isinstance(self.probability, VectorScaling):
                attrs["calibration_vector_weights"] = np.asarray(self.probability.weights).tolist()
                attrs["calibration_vector_biases"] = np.asarray(self.probability.biases).tolist()
                attrs["calibration_vector_penalty"] = self.probability.penalty
        if self.std is not None:
            attrs["calibration_std_factor"] = self.std.factor
        return attrs

    def apply(self, prediction: xr.Dataset) -> xr.Dataset:
        """The prediction with calibrated std (and everything derived from it) and bin probabilities."""
        return self.apply_to(Prediction.from_dataset(prediction)).to_dataset()

    def apply_to(self, prediction: Prediction) -> Prediction:
        """:meth:`apply` on a :class:`~weatherunc.prediction.Prediction`: the std times the factor (bins
        derived from the Gaussian follow it), the probability scaler on the bins (where there are
        bins), the calibration in the attributes."""
        if self.std is not None:
            prediction = prediction.rescaled(self.std.factor)
        if self.probability is not None and prediction.bins is not None:
            prediction = prediction.with_bin_probability(self.probability.apply(prediction.bins.probability))
        return replace(prediction, attrs={**prediction.attrs, **self.attrs()})


def rescale_std(prediction: xr.Dataset, factor: float | np.ndarray) -> xr.Dataset:
    """The prediction with its transformed standard deviation multiplied by ``factor`` (a number or
    one per target, shaped like ``transformed_mean``: ``[target]`` or a grid ``[y, x]``): latent and
    noise variance by ``factor**2``, and the rate's mean, std, quantiles, exceedance probabilities
    and the bin probabilities derived from the Gaussian recomputed from the new Gaussian
    (:meth:`~weatherunc.prediction.Prediction.rescaled`); a categorical head's bins stay as they are."""
    return Prediction.from_dataset(prediction).rescaled(factor).to_dataset()
