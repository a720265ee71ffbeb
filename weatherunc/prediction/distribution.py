"""The rate outputs of a prediction, derived from its Gaussian in transformed space: the one place
that computes them.

A prediction of targets shaped ``[...]`` (``[target]``, ``[station]`` or a grid ``[y, x]``) holds
``Z ~ N(mean, std^2)`` per target and a transform whose offset may differ between targets
(predictions of several tasks pooled, or tiles of one frame). :func:`transform_groups` splits the
targets by offset; every function here then works group by group, each target with its own
transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from weatherunc import conventions
from weatherunc.transforms import (
    TRANSFORM_ATTRIBUTES,
    PrecipitationTransform,
    exceedance_probability,
    moments,
    quantiles,
)

TransformGroups = list[tuple[PrecipitationTransform, np.ndarray]]


def transform_from_attrs(attrs: dict) -> PrecipitationTransform:
    """The transform recorded in a prediction's root attributes (:meth:`PrecipitationTransform.to_attrs`)."""
    missing = [key for key in TRANSFORM_ATTRIBUTES if key not in attrs]
    if missing:
        raise ValueError(f"prediction attrs lack {missing}: no transform is recorded")
    return PrecipitationTransform(
        kind=attrs["transform"],
        offset=float(attrs[conventions.TRANSFORM_OFFSET]),
        lam=float(attrs["transform_lambda"]),
        censor_at_zero=bool(attrs["censored_at_zero"]),
    )


def single_transform(transform: PrecipitationTransform, offsets: np.ndarray | None) -> PrecipitationTransform:
    """``transform`` with the one finite per-target offset of ``offsets`` (any shape; None: none recorded).

    Raises ``ValueError`` where the offsets differ between targets: split them first
    (:func:`transform_groups`).
    """
    if offsets is None:
        return transform
    values = np.unique(offsets[np.isfinite(offsets)])
    if len(values) > 1:
        raise ValueError(
            f"transform_offset differs between targets ({values.tolist()}): no single transform; split "
            "the prediction by offset first"
        )
    return replace(transform, offset=float(values[0])) if len(values) == 1 else transform


def transform_groups(
    transform: PrecipitationTransform, offsets: np.ndarray | None, shape: tuple[int, ...]
) -> TransformGroups:
    """``(transform, mask)`` pairs that cover every target, each mask bool ``shape``.

    One pair (all targets) when there is at most one finite offset; otherwise one per value of
    ``offsets`` (targets without an offset, e.g. unpredicted pixels of a grid, go with the first).
    """
    if offsets is None:
        return [(transform, np.ones(shape, dtype=bool))]
    offsets = np.broadcast_to(offsets, shape)
    values = np.unique(offsets[np.isfinite(offsets)])
    if len(values) <= 1:
        return [(single_transform(transform, offsets), np.ones(shape, dtype=bool))]
    groups = [(replace(transform, offset=float(value)), offsets == value) for value in values]
    groups[0][1][~np.isfinite(offsets)] = True
    return groups


def rate_outputs(
    groups: TransformGroups, mean: np.ndarray, std: np.ndarray, levels: np.ndarray, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """The rate's mean and std ``[...]``, quantiles ``[..., levels]`` and exceedance probabilities
    ``[..., thresholds]`` [mm/h] of ``max(g^-1(Z), 0)``, ``Z ~ N(mean, std^2)`` ``[...]``."""
    rate_mean, rate_std = np.full(mean.shape, np.nan), np.full(mean.shape, np.nan)
    rate_quantiles = np.full((*mean.shape, len(levels)), np.nan)
    rate_exceedance = np.full((*mean.shape, len(thresholds)), np.nan)
    for transform, members in groups:
        rate_mean[members], rate_std[members] = moments(transform, mean[members], std[members])
        rate_quantiles[members] = quantiles(transform, mean[members], std[members], levels)
        rate_exceedance[members] = exceedance_probability(transform, mean[members], std[members], thresholds)
    return {
        conventions.PRECIPITATION_MEAN: rate_mean,
        conventions.PRECIPITATION_STD: rate_std,
        conventions.PRECIPITATION_QUANTILE: rate_quantiles,
        conventions.EXCEEDANCE_PROBABILITY: rate_exceedance,
    }


def mean_keeping_location(
    groups: TransformGroups,
    mean: np.ndarray,
    std: np.ndarray,
    new_std: np.ndarray,
    iterations: int = 30,
) -> np.ndarray:
    """The transformed means ``[...]`` with which ``N(., new_std^2)`` has the rate mean of ``N(mean,
    std^2)`` (:func:`~weatherunc.transforms.moments`), each array ``[...]``: a change of spread that
    keeps the point forecast, where scaling the std alone keeps the median and, under a log-like
    transform, moves the mean with the std (a mean-preserving spread; Rothschild & Stiglitz 1970).

    Bisection on the location, along which the rate mean grows monotonically, in a bracket of
    ``|new_std^2 - std^2| + 4 max(std, new_std)`` about ``mean`` (the exact shift for an uncensored
    log transform is ``(std^2 - new_std^2) / 2``), widened where it does not hold the root; targets
    whose std does not change, that are not finite, or whose rate mean is 0 keep their mean."""
    result = np.array(mean, dtype=np.float64)
    new_std = np.broadcast_to(np.asarray(new_std, dtype=np.float64), result.shape)
    for transform, members in groups:
        changed = members & np.isfinite(result) & np.isfinite(std) & np.isfinite(new_std) & (new_std != std)
        if not changed.any():
            continue
        wanted = moments(transform, result[changed], np.asarray(std)[changed])[0]
        if transform.censor_at_zero:  # a rate mean of 0 (dry at every node) stays put
            movable = wanted > 0
            changed[changed], wanted = movable, wanted[movable]
            if not changed.any():
                continue
        location, old, new = result[changed], np.asarray(std)[changed], new_std[changed]
        reach = np.abs(new**2 - old**2) + 4.0 * np.maximum(old, new)
        for _ in range(8):  # widen the bracket where it does not hold the root yet
            short = (moments(transform, location - reach, new)[0] > wanted) | (
                moments(transform, location + reach, new)[0] < wanted
            )
            if not short.any():
                break
            reach = np.where(short, 2.0 * reach, reach)
        low, high = location - reach, location + reach
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            above = moments(transform, middle, new)[0] > wanted
            high, low = np.where(above, middle, high), np.where(above, low, middle)
        result[changed] = 0.5 * (low + high)
    return result


def gaussian_bin_probabilities(
    transform: PrecipitationTransform,
    mean: np.ndarray,
    std: np.ndarray,
    edges: Sequence[float] = conventions.DEFAULT_BIN_EDGES,
) -> np.ndarray:
    """Bin probabilities ``[..., bins]`` of the censored back-transformed ``N(mean, std^2)`` ``[...]``.

    ``P(e_k <= Y < e_k+1) = P(Y >= e_k) - P(Y >= e_k+1)`` with ``P(Y >= 0) = 1``; the last bin
    is open above.
    """
    edges = np.asarray(edges, dtype=np.float64)
    at_least = np.ones((*np.shape(mean), len(edges) + 1))
    positive = edges > 0
    at_least[..., np.flatnonzero(positive)] = stats.norm.sf(
        (transform.forward(edges[positive]) - mean[..., None]) / std[..., None]
    )
    at_least[..., -1] = 0.0
    return np.clip(at_least[..., :-1] - at_least[..., 1:], 0.0, 1.0)


def grouped_bin_probabilities(
    groups: TransformGroups, mean: np.ndarray, std: np.ndarray, edges: Sequence[float]
) -> np.ndarray:
    """:func:`gaussian_bin_probabilities` ``[..., bins]`` with each target's own transform."""
    probabilities = np.full((*mean.shape, len(edges)), np.nan)
    for transform, members in groups:
        probabilities[members] = gaussian_bin_probabilities(transform, mean[members], std[members], edges)
    return probabilities


def rain_probabilities(
    probabilities: np.ndarray, lower: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, P(rate >= t))``: of ``thresholds`` those that are bin edges ``[k]``, and the
    probabilities ``[..., k]`` summed from the bin probabilities ``[..., bins]``."""
    chosen = np.asarray([t for t in thresholds if np.any(np.isclose(lower, t))])
    tails = np.cumsum(probabilities[..., ::-1], axis=-1)[..., ::-1]  # [..., bins]: P(bin >= k)
    first = np.array([np.flatnonzero(lower >= t - 1e-12)[0] for t in chosen], dtype=np.int64)
    return chosen, tails[..., first]


def epistemic_share(latent_variance: np.ndarray, noise_variance: np.ndarray | float) -> np.ndarray:
    """``latent / (latent + noise)`` ``[...]`` (broadcast), the epistemic share of the transformed
    rate's predictive variance (Kendall & Gal 2017, "What uncertainties do we need in Bayesian deep
    learning for computer vision?", NeurIPS); NaN where the variance is 0 or unknown."""
    latent, noise = np.broadcast_arrays(np.asarray(latent_variance, float), np.asarray(noise_variance, float))
    total = latent + noise
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, latent / np.where(total > 0, total, 1.0), np.nan)
