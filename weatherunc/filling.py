"""One call to fill the unobserved pixels of a scientist's own precipitation map.

:func:`fill` takes an ``xr.DataArray`` of precipitation rate with NaN where nothing was observed,
dims ``(y, x)``, ``(lat, lon)`` or ``(latitude, longitude)``, optionally after a leading ``time``,
and returns a CF ``xr.Dataset`` with the observed field, the filled mean, its standard deviation,
quantiles, exceedance and bin probabilities, the epistemic share of the variance and an
``observation`` flag per pixel. Each frame is predicted tile by tile, only at its unobserved
pixels, each tile reaching ``tiling.blend_pixels`` into its neighbours and blended with them so
that the map has no seams (:func:`weatherunc.blending.predict_blended`).

Observed pixels keep their value: there the predictive distribution is the point mass at the
observation (mean = observed value, std 0, every quantile the observed value, probabilities 0 or 1).
The output is in mm/h whatever the input's rate units, on the input's coordinates and CRS.

The CRS is found as :mod:`weatherunc.fill_inputs` says (the ``crs`` argument first).

Modules: :mod:`weatherunc.fill_inputs` (checks, units and CRS of the input), :mod:`weatherunc.blending`
(tiles blended; a model that fits per task fitted once per frame, :mod:`weatherunc.shared_fit`) and
:mod:`weatherunc.fill_outputs` (the CF Dataset).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyproj
import xarray as xr
from tqdm import tqdm

from weatherunc import conventions, validation
from weatherunc.blending import predict_blended
from weatherunc.conventions import FILLED, OBSERVED, UNFILLED
from weatherunc.fill_inputs import (
    PROJECTED_DIMS,
    SOURCE,
    CheckedGrid,
    checked_grid,
    resolve_crs,
    variable_name,
)
from weatherunc.fill_outputs import PREDICTED_VARIABLES, assemble
from weatherunc.geolocation import grid_mapping
from weatherunc.models.interface import SharesFit, minimum_contexts
from weatherunc.models.registry import MODELS, Interpolator, get_model
from weatherunc.tiling import GridTiling

__all__ = ["DEFAULT_BLEND_PIXELS", "FILLED", "OBSERVED", "UNFILLED", "fill"]

#: How far the default tiling's tiles reach into their neighbours to be blended [pixels].
DEFAULT_BLEND_PIXELS = 16


def fill(
    data: xr.DataArray,
    *,
    model: str | Interpolator = "gp",
    crs: pyproj.CRS | str | int | None = None,
    tiling: GridTiling | None = None,
    units: str | None = None,
    share_fit: bool = True,
    progress: bool = True,
) -> xr.Dataset:
    """Fill the NaN pixels of ``data`` and say how sure each filled value is.

    Parameters
    ----------
    data: precipitation rate ``[y, x]``, ``[lat, lon]`` or ``[latitude, longitude]``, optionally
        ``[time, ...]`` (each time filled on its own), NaN where unobserved, with a ``units``
        attribute convertible to mm/h (:data:`weatherunc.conventions.RATE_UNIT_FACTORS`).
    model: a registered model name (:func:`weatherunc.models.registry.get_model`) or a model instance.
    crs: the grid's CRS, anything ``pyproj.CRS.from_user_input`` reads (``"EPSG:3035"``); by default
        the data's CF grid mapping, rioxarray's ``spatial_ref``, or EPSG:4326 for lat/lon dims.
    tiling: tile size, halo, context cap and blending (:class:`weatherunc.tiling.GridTiling`; its
        ``targets`` must be ``"unobserved"``); by default 64-pixel tiles blended over 32 pixels
        across each edge, or one tile for a model that sees the whole frame (the ConvNP).
    units: the data's units when it has no ``units`` attribute (e.g. ``"mm h-1"``).
    share_fit: a model that fits its options per task (the GP: transform offset, kernel, hyperparameters)
        is fitted once per frame on the observed pixels near the gaps and every tile conditions on
        its own contexts with that fit (:mod:`weatherunc.shared_fit`); False: each tile fits its own.
    progress: show progress bars over frames and tiles.

    Returns
    -------
    A Dataset on ``data``'s coordinates (and dims), rates in mm/h: ``precipitation`` (observed,
    NaN unobserved), ``precipitation_mean`` and ``precipitation_std`` ``[..., y, x]``,
    ``precipitation_quantile`` ``[..., y, x, quantile]``, ``exceedance_probability``
    ``[..., y, x, threshold]``, ``bin_probability`` ``[..., y, x, bin]``, ``epistemic_share``
    ``[..., y, x]`` (latent over total variance of the transformed rate; NaN where observed) and
    ``observation`` (0 filled, 1 observed, 2 unfilled) ``[..., y, x]``, with the CRS as grid
    mapping. At observed pixels the mean is the observation, the std 0 and every quantile the
    observation. A self-calibrated model (``"gp+self"``, any ``NAME+self``) adds the attributes
    ``self_calibration`` (JSON: per frame and tile, what was fitted on how many pseudo-targets and
    the scores before and after on them) and ``self_calibration_seconds``.
    ``exceedance_probability`` is derived from the Gaussian of the transformed rate, while
    ``bin_probability`` is the model's rain-bin head where it has one and is what a probability
    scaler (self-calibration, a calibration file) rescales: the two can then disagree, and the
    bins are the calibrated probabilities.

    Raises
    ------
    TypeError: ``data`` is not a DataArray, or ``model`` is neither a name nor a model.
    ValueError (:class:`weatherunc.InputDataError` for the data): wrong dims, missing coordinates,
    missing or unknown units, negative, infinite, implausible or all-NaN values, nothing to fill,
    or no CRS to be found.
    """
    name = variable_name(data)
    grid = checked_grid(data, name, units)
    resolved, mapping = resolve_crs(data, grid, name, crs)
    validation.check_grid(
        data[grid.x_dim].values,
        data[grid.y_dim].values,
        resolved,
        source=f"{SOURCE} (coordinates of {name!r})",
        names=(str(grid.x_dim), str(grid.y_dim)),
    )
    interpolator = _interpolator(model)
    tiling = _checked_tiling(tiling, interpolator, data.shape)
    records: list[dict[str, object]] = []
    predicted, coordinates = _predict(
        interpolator, grid, data, resolved, tiling, share_fit, progress, records
    )
    if mapping is None:
        mapping = conventions.CRS_VARIABLE
        coordinates[mapping] = grid_mapping(resolved)
    filled = assemble(
        data,
        grid,
        predicted,
        coordinates,
        mapping=mapping,
        name=name,
        model=interpolator,
        tiling=tiling,
        shared_fit=share_fit and isinstance(interpolator, SharesFit),
    )
    if records:  # a self-calibrated model: what each tile fitted (weatherunc.heads.self_calibration)
        filled.attrs["self_calibration"] = json.dumps(records)
        filled.attrs["self_calibration_seconds"] = round(sum(float(r["seconds"]) for r in records), 3)
    unfilled = int((filled["observation"] == UNFILLED).sum())
    if unfilled:
        warnings.warn(
            f"{SOURCE}: {unfilled} unobserved pixels of {name!r} have fewer observed pixels within reach "
            f"than {interpolator.name!r} needs ({minimum_contexts(interpolator)}) and stay NaN "
            f"(observation == {UNFILLED}); a larger tiling.halo_pixels reaches further",
            UserWarning,
            stacklevel=2,
        )
    return filled


def _interpolator(model: str | Interpolator) -> Interpolator:
    if isinstance(model, str):
        return get_model(model)
    if not callable(getattr(model, "predict", None)):
        raise TypeError(
            f"{SOURCE}: model must be a registered name ({', '.join(sorted(MODELS))}) or have predict(task) "
            f"(check 'model'), got {type(model).__name__}"
        )
    return model


def _checked_tiling(tiling: GridTiling | None, model: Interpolator, shape: tuple[int, ...]) -> GridTiling:
    if tiling is None and getattr(model, "whole_frame", False):  # a model that sees the whole frame at once
        tiling = GridTiling(tile_pixels=max(shape[-2:]), halo_pixels=0, max_context=int(np.prod(shape[-2:])))
    tiling = GridTiling(blend_pixels=DEFAULT_BLEND_PIXELS) if tiling is None else tiling
    if tiling.targets != "unobserved":
        raise ValueError(
            f"{SOURCE}: tiling.targets must be 'unobserved' (check 'tiling'): observed pixels keep their "
            f"value, got {tiling.targets!r}"
        )
    return tiling


def _predict(
    model: Interpolator,
    grid: CheckedGrid,
    data: xr.DataArray,
    crs: pyproj.CRS,
    tiling: GridTiling,
    share_fit: bool,
    progress: bool,
    records: list[dict[str, object]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, xr.DataArray]]:
    """The model's outputs ``[frames, ny, nx, extra]`` at unobserved pixels (NaN elsewhere) and
    the coordinates of their extra dims (quantile, threshold, bin); ``records``: each
    self-calibrated tile's record is appended to it, with its frame's number."""
    axes = {conventions.Y: data[grid.y_dim].values, conventions.X: data[grid.x_dim].values}
    frames, ny, nx = grid.rates.shape
    predicted: dict[str, np.ndarray] = {}
    coordinates: dict[str, xr.DataArray] = {}
    for number in tqdm(range(frames), desc="frames", disable=not progress or frames == 1):
        if np.isfinite(grid.rates[number]).all():
            continue
        frame = xr.DataArray(grid.rates[number], dims=PROJECTED_DIMS, coords=axes)
        tile_records: list[dict[str, object]] = []
        blended = predict_blended(
            model, frame, crs=crs, tiling=tiling, share_fit=share_fit, progress=progress, records=tile_records
        )
        if records is not None:
            records.extend({"frame": number, **record} for record in tile_records)
        if blended is None:
            continue
        outputs, coordinates = blended
        for variable in (name for name in PREDICTED_VARIABLES if name in outputs):
            if variable not in predicted:
                predicted[variable] = np.full((frames, ny, nx, *outputs[variable].shape[2:]), np.nan)
            predicted[variable][number] = outputs[variable]
    if not predicted:
        raise ValueError(
            f"{SOURCE}: nothing could be filled (check 'observed pixels within reach'): no unobserved pixel "
            "lies within "
            f"tiling.halo_pixels={tiling.halo_pixels} of its tile from an observed one"
        )
    return predicted, coordinates
