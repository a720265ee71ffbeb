"""The prediction schema: :class:`Prediction`, the one owner of what a model's prediction carries.

A prediction of targets shaped ``[...]`` (dims ``dims``: ``[target]``, ``[station]`` or a grid
``[y, x]``) holds the Gaussian ``Z ~ N(transformed_mean, transformed_std^2)`` of the transformed
rate with ``transformed_std^2 = latent_variance + noise_variance``, the transform of every target
(one kind, lambda and censoring; the offset per target), optionally probabilities over rain-rate
bins, the target coordinates and the model's attributes. :meth:`Prediction.to_dataset` writes it
with the derived outputs in mm/h (:mod:`weatherunc.prediction.distribution`);
:meth:`Prediction.from_dataset` reads it back, exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.prediction import distribution
from weatherunc.prediction.attributes import (
    ATTRS,
    DEFAULT_QUANTILES,
    DEFAULT_THRESHOLDS,
    DERIVED_SOURCE,
    HEAD_SOURCE,
    RATE_OUTPUTS,
    read_transform,
)
from weatherunc.transforms import PrecipitationTransform

_GAUSSIAN = (
    conventions.TRANSFORMED_MEAN,
    conventions.TRANSFORMED_STD,
    conventions.LATENT_VARIANCE,
    conventions.NOISE_VARIANCE,
)
_BINS = (conventions.BIN_PROBABILITY, conventions.PREDICTIVE_ENTROPY, conventions.MUTUAL_INFORMATION)
_OWNED = (*RATE_OUTPUTS, *_GAUSSIAN, *_BINS, conventions.TRANSFORM_OFFSET, conventions.RAIN_PROBABILITY)


@dataclass(frozen=True, eq=False)
class BinProbabilities:
    """Probabilities ``[..., bin]`` over rain-rate bins with lower ``edges`` [mm/h] ``[bin]`` (the last
    open above), and for a categorical head over model draws its ``predictive_entropy`` and
    ``mutual_information`` ``[...]`` [nat]."""

    probability: np.ndarray
    edges: np.ndarray
    source: str = DERIVED_SOURCE
    predictive_entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Prediction:
    """A model's prediction of targets ``[...]`` along ``dims`` (see the module docstring).

    ``offset``: the transform's offset per target ``[...]`` (NaN: no prediction; None: only
    ``transform.offset`` is recorded). ``coords``: the target coordinates and any other
    coordinates; ``attrs``: the root attributes (``model``, ...; the transform's are written from
    ``transform``); ``variable_attrs``: attributes read with a dataset, in place of :data:`ATTRS`;
    ``cached``: derived outputs read with a dataset (written as read, not recomputed, until the
    Gaussian or the bins change); ``extra``: variables outside the schema, kept as they are.
    """

    dims: tuple[Hashable, ...]
    transformed_mean: np.ndarray
    transformed_std: np.ndarray
    latent_variance: np.ndarray
    noise_variance: np.ndarray
    transform: PrecipitationTransform
    offset: np.ndarray | None = None
    quantile_levels: np.ndarray = field(default_factory=lambda: np.asarray(DEFAULT_QUANTILES))
    thresholds: np.ndarray = field(default_factory=lambda: np.asarray(DEFAULT_THRESHOLDS))
    bins: BinProbabilities | None = None
    coords: Mapping[Hashable, Any] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    variable_attrs: Mapping[Hashable, Mapping[str, Any]] = field(default_factory=dict)
    cached: Mapping[str, np.ndarray] = field(default_factory=dict)
    extra: Mapping[Hashable, xr.Variable] = field(default_factory=dict)

    @classmethod
    def from_moments(
        cls,
        dims: tuple[Hashable, ...],
        *,
        transformed_mean: np.ndarray,
        latent_variance: np.ndarray,
        noise_variance: np.ndarray | float,
        transform: PrecipitationTransform,
        model: str,
        description: str = "",
        quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        coords: Mapping[Hashable, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Prediction:
        """A model's prediction from its transformed-space moments ``[...]`` (noise may be a number).

        Negative latent variances are set to 0; ``transformed_std`` is ``sqrt(latent + noise)``
        and must be > 0 everywhere (else ``FloatingPointError``). Every target gets the offset of
        ``transform``; ``coords`` are ``{name: (dims, values)}`` or variables; ``description``
        (of the task) is the attribute ``task``.
        """
        latent_variance = np.maximum(np.asarray(latent_variance, dtype=np.float64), 0.0)
        noise_variance = np.array(
            np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), latent_variance.shape)
        )
        transformed_std = np.sqrt(latent_variance + noise_variance)
        if not np.all(transformed_std > 0):
            raise FloatingPointError(f"{model}: predictive standard deviation must be > 0 everywhere")
        return cls(
            dims=tuple(dims),
            transformed_mean=transformed_mean,
            transformed_std=transformed_std,
            latent_variance=latent_variance,
            noise_variance=noise_variance,
            transform=transform,
            offset=np.full(latent_variance.shape, float(transform.offset)),
            quantile_levels=np.asarray(quantile_levels, dtype=np.float64),
            thresholds=np.asarray(thresholds, dtype=np.float64),
            coords=dict(coords or {}),
            attrs={"model": model, "task": description, **transform.to_attrs(), **(attrs or {})},
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the targets ``[...]``."""
        return np.shape(self.transformed_mean)

    @property
    def model(self) -> str:
        """The ``model`` attribute (the model's name)."""
        return str(self.attrs.get("model", ""))

    def transform_groups(self) -> distribution.TransformGroups:
        """``(transform, mask)`` pairs covering every target (:func:`~.distribution.transform_groups`)."""
        return distribution.transform_groups(self.transform, self.offset, self.shape)

    def single_transform(self) -> PrecipitationTransform:
        """The one transform of every target; ``ValueError`` where offsets differ between targets."""
        return distribution.single_transform(self.transform, self.offset)

    def rate_outputs(self) -> dict[str, np.ndarray]:
        """Mean, std, quantiles and exceedance probabilities of the rate [mm/h] (:data:`RATE_OUTPUTS`)."""
        if all(name in self.cached for name in RATE_OUTPUTS):
            return {name: self.cached[name] for name in RATE_OUTPUTS}
        return distribution.rate_outputs(
            self.transform_groups(),
            self.transformed_mean,
            self.transformed_std,
            self.quantile_levels,
            self.thresholds,
        )

    def recomputed(self) -> Prediction:
        """The prediction without cached derived outputs: :meth:`to_dataset` computes them afresh."""
        return replace(self, cached={})

    def rescaled(self, factor: float | np.ndarray, *, keep_mean: bool = False) -> Prediction:
        """The transformed std times ``factor`` (a number or ``[...]``, each finite and > 0), the latent
        and noise variances times ``factor**2``; the rate outputs follow, and so do bins derived from
        the Gaussian (derived again, on their edges); a categorical head's bins stay as they are.
        The transformed mean stays (so does the rate's median), or with ``keep_mean`` moves so that
        the rate's mean stays (:func:`~.distribution.mean_keeping_location`)."""
        factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), self.shape)
        if not np.all(np.isfinite(factor) & (factor > 0)):
            raise ValueError("factor: every std factor must be finite and > 0")
        transformed_std = self.transformed_std * factor
        rescaled = replace(
            self,
            transformed_mean=(
                distribution.mean_keeping_location(
                    self.transform_groups(), self.transformed_mean, self.transformed_std, transformed_std
                )
                if keep_mean
                else self.transformed_mean
            ),
            transformed_std=transformed_std,
            latent_variance=self.latent_variance * factor**2,
            noise_variance=self.noise_variance * factor**2,
            cached={key: value for key, value in self.cached.items() if key not in RATE_OUTPUTS},
        )
        if self.bins is None or self.bins.source == HEAD_SOURCE:
            return rescaled
        return rescaled.with_bins(None).with_derived_bins(self.bins.edges)

    def with_bins(
        self, bins: BinProbabilities | None, variable_attrs: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Prediction:
        """The prediction with new ``bins`` (None: without bins), their variables' attributes
        :data:`ATTRS` unless given in ``variable_attrs``; rain probabilities follow."""
        kept = {
            k: v for k, v in self.variable_attrs.items() if k not in (*_BINS, conventions.RAIN_PROBABILITY)
        }
        return replace(
            self,
            bins=bins,
            variable_attrs={**kept, **(variable_attrs or {})},
            cached={k: v for k, v in self.cached.items() if k != conventions.RAIN_PROBABILITY},
        )

    def with_derived_bins(self, edges: Sequence[float] = conventions.DEFAULT_BIN_EDGES) -> Prediction:
        """Bin probabilities derived from the Gaussian, unless the prediction has bins already."""
        if self.bins is not None:
            return self
        probability = distribution.grouped_bin_probabilities(
            self.transform_groups(), self.transformed_mean, self.transformed_std, edges
        )
        return self.with_bins(BinProbabilities(probability, np.asarray(edges, dtype=np.float64)))

    def with_bin_probability(self, probability: np.ndarray) -> Prediction:
        """The bins' probabilities replaced by ``probability`` ``[..., bin]`` (e.g. calibrated), their
        attributes kept; rain probabilities follow."""
        if self.bins is None:
            raise ValueError("the prediction has no bin probabilities to replace")
        return replace(
            self,
            bins=replace(self.bins, probability=probability),
            cached={k: v for k, v in self.cached.items() if k != conventions.RAIN_PROBABILITY},
        )

    def rain_probability(self) -> tuple[np.ndarray, np.ndarray]:
        """``(thresholds [k], P(rate >= t) [..., k])`` from the bins, for the thresholds that are bin
        edges (as read, where read with a dataset)."""
        if self.bins is None:
            raise ValueError("the prediction has no bin probabilities")
        if conventions.RAIN_PROBABILITY in self.cached:
            return self.thresholds, self.cached[conventions.RAIN_PROBABILITY]
        return distribution.rain_probabilities(self.bins.probability, self.bins.edges, self.thresholds)

    def to_dataset(self) -> xr.Dataset:
        """The prediction as an ``xr.Dataset``: the Gaussian, the transform's offset per target, the
        rate outputs, the bins with ``rain_probability`` [for thresholds that are bin edges]."""
        dims = self.dims

        def variable(name: str, extra: tuple[str, ...], values: np.ndarray) -> tuple:
            return ((*dims, *extra), values, dict(self.variable_attrs.get(name, ATTRS[name])))

        extra_dims = {conventions.PRECIPITATION_QUANTILE: (conventions.QUANTILE,)}
        extra_dims[conventions.EXCEEDANCE_PROBABILITY] = (conventions.THRESHOLD,)
        variables = {
            name: variable(name, extra_dims.get(name, ()), values)
            for name, values in self.rate_outputs().items()
        }
        for name, values in zip(
            _GAUSSIAN,
            (self.transformed_mean, self.transformed_std, self.latent_variance, self.noise_variance),
        ):
            variables[name] = variable(name, (), values)
        if self.offset is not None:
            variables[conventions.TRANSFORM_OFFSET] = variable(conventions.TRANSFORM_OFFSET, (), self.offset)
        coords: dict[Hashable, Any] = {
            conventions.QUANTILE: (
                conventions.QUANTILE,
                self.quantile_levels,
                self._attrs_of(conventions.QUANTILE),
            ),
            conventions.THRESHOLD: (
                conventions.THRESHOLD,
                self.thresholds,
                self._attrs_of(conventions.THRESHOLD),
            ),
            **self.coords,
        }
        if self.bins is not None:
            coords.update(self._bin_coordinates())
            variables[conventions.BIN_PROBABILITY] = (
                (*dims, conventions.BIN),
                self.bins.probability,
                dict(self.variable_attrs.get(conventions.BIN_PROBABILITY, self._bin_attrs())),
            )
            for name, values in zip(_BINS[1:], (self.bins.predictive_entropy, self.bins.mutual_information)):
                if values is not None:
                    variables[name] = variable(name, (), values)
        variables.update(self.extra)
        attrs = {**self.attrs, **self.transform.to_attrs()}
        dataset = xr.Dataset(variables, coords=coords, attrs=attrs)
        if self.bins is None:
            return dataset
        thresholds, values = self.rain_probability()
        dataset[conventions.RAIN_PROBABILITY] = xr.DataArray(
            values,
            dims=(*dims, conventions.THRESHOLD),
            coords={conventions.THRESHOLD: thresholds},
            attrs=self._attrs_of(conventions.RAIN_PROBABILITY),
        )
        return dataset

    def _attrs_of(self, name: str) -> dict[str, Any]:
        return dict(self.variable_attrs.get(name, ATTRS[name]))

    def _bin_attrs(self) -> dict[str, Any]:
        return {
            **ATTRS[conventions.BIN_PROBABILITY],
            "source": self.bins.source if self.bins else DERIVED_SOURCE,
        }

    def _bin_coordinates(self) -> dict[str, tuple]:
        edges = self.bins.edges
        return {
            conventions.BIN: (conventions.BIN, np.arange(len(edges)), self._attrs_of(conventions.BIN)),
            conventions.BIN_LOWER: (conventions.BIN, edges, self._attrs_of(conventions.BIN_LOWER)),
            conventions.BIN_UPPER: (
                conventions.BIN,
                np.append(edges[1:], np.inf),
                self._attrs_of(conventions.BIN_UPPER),
            ),
        }

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset) -> Prediction:
        """Read a prediction written by :meth:`to_dataset` (or pooled, tiled or stored ones): the
        transform from the root attributes and ``transform_offset``; derived outputs are kept as read."""
        dims = dataset[conventions.TRANSFORMED_MEAN].dims

        def values(name: str, *extra: str) -> np.ndarray:
            return dataset[name].transpose(*dims, *extra).values

        transform, offset = read_transform(dataset)
        bins = None
        if conventions.BIN_PROBABILITY in dataset:
            optional = [values(name) if name in dataset else None for name in _BINS[1:]]
            bins = BinProbabilities(
                values(conventions.BIN_PROBABILITY, conventions.BIN),
                dataset[conventions.BIN_LOWER].values,
                dataset[conventions.BIN_PROBABILITY].attrs.get("source", DERIVED_SOURCE),
                *optional,
            )
        owned_coords = {conventions.QUANTILE, conventions.THRESHOLD}
        if bins is not None:
            owned_coords |= {conventions.BIN, conventions.BIN_LOWER, conventions.BIN_UPPER}
        extra_dims = {conventions.PRECIPITATION_QUANTILE: (conventions.QUANTILE,)}
        extra_dims[conventions.EXCEEDANCE_PROBABILITY] = (conventions.THRESHOLD,)
        extra_dims[conventions.RAIN_PROBABILITY] = (conventions.THRESHOLD,)
        cached = {
            name: values(name, *extra_dims.get(name, ()))
            for name in (*RATE_OUTPUTS, conventions.RAIN_PROBABILITY)
            if name in dataset
        }
        return cls(
            dims=dims,
            transformed_mean=values(conventions.TRANSFORMED_MEAN),
            transformed_std=values(conventions.TRANSFORMED_STD),
            latent_variance=values(conventions.LATENT_VARIANCE),
            noise_variance=values(conventions.NOISE_VARIANCE),
            transform=transform,
            offset=offset,
            quantile_levels=dataset[conventions.QUANTILE].values,
            thresholds=dataset[conventions.THRESHOLD].values,
            bins=bins,
            coords={
                name: coord.variable for name, coord in dataset.coords.items() if name not in owned_coords
            },
            attrs=dict(dataset.attrs),
            variable_attrs={
                name: dict(dataset[name].attrs)
                for name in (*_OWNED, *owned_coords)
                if name in dataset.variables
            },
            cached=cached,
            extra={name: var.variable for name, var in dataset.data_vars.items() if name not in _OWNED},
        )
