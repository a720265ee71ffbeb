"""``POST /fill``: posted observations filled on demand by a registered model.

A request is a JSON object::

    {"model": "gp",
     "observations": GAUGES or GRID,
     "target": POINTS or GRID,          (gauges only; a grid's targets are its null pixels)
     "outputs": ["precipitation_mean", ...]}   (optional; default mean, std, exceedance)

GAUGES is a GeoJSON ``FeatureCollection`` (RFC 7946: longitude/latitude) of ``Point`` features,
each with a ``rate`` property in mm/h. GRID is ``{"type": "Grid", "x": [...], "y": [...],
"crs": "EPSG:4326", "values": [[...]]}`` with rows along ``y`` and ``null`` where unobserved
(``values`` and ``units`` only on observations). POINTS is a GeoJSON ``FeatureCollection`` of
``Point`` features or one ``MultiPoint``. Gauges go to the model as one task
(:class:`weatherunc.tasks.Task`, coordinates by :func:`weatherunc.tasks.planar_kilometres`), a
grid to :func:`weatherunc.fill`; both return the predictive mean, std, quantiles, exceedance and
bin probabilities (:func:`weatherunc.heads.bins.with_bin_probabilities`). ``"model": "gp+self"``
(any ``NAME+self``) self-calibrates the prediction on pseudo-gaps of the posted observations; the
response's ``calibration`` names the calibration applied
(:func:`weatherunc.heads.calibration_label.calibration_label`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import xarray as xr

from weatherunc import conventions
from weatherunc.heads.calibration_label import calibration_label
from weatherunc.service.settings import (
    BATCH_JOB_HINT,
    GEOGRAPHIC_RANGE,
    RequestError,
    ServiceLimits,
    finite_or_none,
    on_the_globe,
)

#: Outputs a fill may return, and the default ones.
FILL_OUTPUTS = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.PRECIPITATION_QUANTILE,
    conventions.EXCEEDANCE_PROBABILITY,
    conventions.BIN_PROBABILITY,
    conventions.EPISTEMIC_SHARE,
)
DEFAULT_FILL_OUTPUTS = (
    conventions.PRECIPITATION_MEAN,
    conventions.PRECIPITATION_STD,
    conventions.EXCEEDANCE_PROBABILITY,
)
GEOGRAPHIC = "EPSG:4326"
#: Significant decimals kept in the JSON answer.
DECIMALS = 6


def _points(geojson: Any, what: str, limit: int, *, rates: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Longitude/latitude ``[n, 2]`` of a GeoJSON FeatureCollection of Points (or a MultiPoint), and
    the ``rate`` property of each feature ``[n]`` when ``rates``."""
    if not isinstance(geojson, dict) or geojson.get("type") not in ("FeatureCollection", "MultiPoint"):
        raise RequestError(
            400,
            f"{what}: expected a GeoJSON FeatureCollection of Points"
            + ("" if rates else " or a MultiPoint")
            + " (or a Grid object)",
        )
    if geojson["type"] == "MultiPoint":
        if rates:
            raise RequestError(400, f"{what}: a MultiPoint has no rates; send Point features with a 'rate'")
        coordinates, values = geojson.get("coordinates"), None
    else:
        features = geojson.get("features")
        if not isinstance(features, list):
            raise RequestError(400, f"{what}: a FeatureCollection needs a 'features' list")
        coordinates, values = [], []
        for number, feature in enumerate(features):
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            if not isinstance(geometry, dict) or geometry.get("type") != "Point":
                raise RequestError(400, f"{what}: feature {number} is not a Feature with a Point geometry")
            coordinates.append(geometry.get("coordinates"))
            if rates:
                properties = feature.get("properties") or {}
                rate = properties.get("rate") if isinstance(properties, dict) else None
                if isinstance(rate, bool) or not isinstance(rate, int | float):
                    raise RequestError(
                        400, f"{what}: feature {number} needs a numeric 'rate' property [mm/h]"
                    )
                values.append(float(rate))
    if not isinstance(coordinates, list) or not coordinates:
        raise RequestError(400, f"{what}: no points")
    if len(coordinates) > limit:
        raise RequestError(
            413, f"{what}: {len(coordinates)} points, more than the limit of {limit}; {BATCH_JOB_HINT}"
        )
    try:
        points = np.asarray(coordinates, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RequestError(400, f"{what}: point coordinates must be [longitude, latitude] numbers") from error
    if points.ndim != 2 or points.shape[1] != 2:
        raise RequestError(400, f"{what}: point coordinates must be [longitude, latitude] pairs")
    if not np.all(np.isfinite(points)) or not on_the_globe(points[:, 0], points[:, 1]):
        raise RequestError(400, f"{what}: coordinates must be finite, {GEOGRAPHIC_RANGE}")
    rate_array = None if values is None else np.asarray(values, dtype=np.float64)
    return points, rate_array


def _axis(grid: dict, name: str, what: str) -> np.ndarray:
    values = grid.get(name)
    try:
        axis = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RequestError(400, f"{what}: {name!r} must be a list of numbers") from error
    if axis.ndim != 1 or axis.size < 2 or not np.all(np.isfinite(axis)):
        raise RequestError(400, f"{what}: {name!r} must be a list of at least 2 finite numbers")
    steps = np.diff(axis)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise RequestError(400, f"{what}: {name!r} must be strictly increasing or decreasing")
    return axis


def _grid_axes(grid: Any, what: str, limits: ServiceLimits) -> tuple[np.ndarray, np.ndarray, pyproj.CRS]:
    if not isinstance(grid, dict) or grid.get("type") != "Grid":
        raise RequestError(400, f"{what}: expected a Grid object {{'type': 'Grid', 'x': [...], 'y': [...]}}")
    x, y = _axis(grid, "x", what), _axis(grid, "y", what)
    if x.size * y.size > limits.max_grid_pixels:
        raise RequestError(
            413,
            f"{what}: {y.size} x {x.size} pixels, more than the limit of {limits.max_grid_pixels}; "
            + BATCH_JOB_HINT,
        )
    try:
        crs = pyproj.CRS.from_user_input(grid.get("crs", GEOGRAPHIC))
    except pyproj.exceptions.CRSError as error:
        raise RequestError(400, f"{what}: cannot read crs {grid.get('crs')!r} ({error})") from error
    if crs.is_geographic and not on_the_globe(x, y):
        raise RequestError(400, f"{what}: a geographic grid needs {GEOGRAPHIC_RANGE}")
    return x, y, crs


def _outputs(requested: Any) -> list[str]:
    if requested is None:
        return list(DEFAULT_FILL_OUTPUTS)
    if (
        not isinstance(requested, list)
        or not requested
        or any(name not in FILL_OUTPUTS for name in requested)
    ):
        raise RequestError(400, f"outputs: a list of some of {', '.join(FILL_OUTPUTS)}, got {requested!r}")
    return list(dict.fromkeys(requested))


def _model(name: Any):
    from weatherunc.models.registry import get_model

    if not isinstance(name, str):
        raise RequestError(400, "model: a registered model name, e.g. 'gp'")
    try:
        return get_model(name)
    except ValueError as error:
        raise RequestError(400, f"model: {error}") from error


def _plain(values: np.ndarray) -> list:
    """Nested lists of ``values`` rounded, NaN as ``null``."""
    rounded = np.round(np.asarray(values, dtype=np.float64), DECIMALS)
    return np.where(np.isfinite(rounded), rounded, None).tolist()


def _axes_of(prediction: xr.Dataset) -> dict[str, list[float]]:
    return {
        name: [finite_or_none(value) for value in prediction[name].values]
        for name in (
            conventions.QUANTILE,
            conventions.THRESHOLD,
            conventions.BIN_LOWER,
            conventions.BIN_UPPER,
        )
        if name in prediction.coords
    }


def fill_request(body: Any, limits: ServiceLimits) -> dict[str, Any]:
    """Answer a parsed ``POST /fill`` body (see the module docstring); ``RequestError`` for a bad one."""
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object with 'model', 'observations' and 'target'")
    unknown = sorted(set(body) - {"model", "observations", "target", "outputs"})
    if unknown:
        raise RequestError(400, f"unknown field(s) {unknown}; fields: model, observations, target, outputs")
    outputs = _outputs(body.get("outputs"))
    observations = body.get("observations")
    if isinstance(observations, dict) and observations.get("type") == "Grid":
        if body.get("target") is not None:
            raise RequestError(
                400, "target: a grid's targets are its null pixels; send no target with a grid"
            )
        return _fill_grid(observations, _model(body.get("model", "gp")), outputs, limits)
    gauges, rates = _points(observations, "observations", limits.max_gauges, rates=True)
    target = body.get("target")
    if target is None:
        raise RequestError(400, "target: required with gauge observations (a Grid or GeoJSON points)")
    model = _model(body.get("model", "gp"))
    if isinstance(target, dict) and target.get("type") == "Grid":
        x, y, crs = _grid_axes(target, "target", limits)
        grid_x, grid_y = np.meshgrid(x, y)
        targets = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        gauges = np.stack(
            pyproj.Transformer.from_crs(GEOGRAPHIC, crs, always_xy=True).transform(
                gauges[:, 0], gauges[:, 1]
            ),
            axis=1,
        )
        prediction = _predict_points(model, gauges, rates, targets, crs)
        shape = (y.size, x.size)
        variables = {
            name: _plain(prediction[name].values.reshape(*shape, *prediction[name].shape[1:]))
            for name in outputs
        }
        return {
            "type": "Grid",
            "model": getattr(model, "name", str(body.get("model"))),
            "calibration": calibration_label(prediction.attrs),
            "x": x.tolist(),
            "y": y.tolist(),
            "crs": crs.to_string(),
            **_axes_of(prediction),
            "variables": variables,
        }
    targets, _ = _points(target, "target", limits.max_grid_pixels, rates=False)
    prediction = _predict_points(model, gauges, rates, targets, pyproj.CRS.from_user_input(GEOGRAPHIC))
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(point[0]), float(point[1])]},
            "properties": {name: _plain(prediction[name].values[number]) for name in outputs},
        }
        for number, point in enumerate(targets)
    ]
    return {
        "type": "FeatureCollection",
        "model": getattr(model, "name", str(body.get("model"))),
        "calibration": calibration_label(prediction.attrs),
        **_axes_of(prediction),
        "features": features,
    }


def _predict_points(
    model, gauges: np.ndarray, rates: np.ndarray, targets: np.ndarray, crs: pyproj.CRS
) -> xr.Dataset:
    """The model's prediction ``[target, ...]`` at ``targets`` from the gauges (both ``[n, 2]``, in
    ``crs``); 400 where the model needs more gauges than were posted."""
    from weatherunc.heads.bins import with_bin_probabilities
    from weatherunc.models.interface import minimum_contexts
    from weatherunc.prediction import epistemic_share
    from weatherunc.tasks import Task, planar_kilometres

    needed = minimum_contexts(model)
    if len(gauges) < needed:
        raise RequestError(
            400,
            f"observations: {getattr(model, 'name', 'the model')} needs at least {needed} gauges, "
            f"got {len(gauges)}",
        )

    every = np.concatenate([gauges, targets])
    x_km, y_km = planar_kilometres(every[:, 0], every[:, 1], crs)  # one plane for gauges and targets
    kilometres = np.stack([x_km, y_km], axis=1)
    try:
        task = Task(
            context_coordinates=kilometres[: len(gauges)],
            context_values=rates,
            target_coordinates=kilometres[len(gauges) :],
            target_values=np.full(len(targets), np.nan),
            description="weatherunc serve: POST /fill",
        )
    except ValueError as error:
        raise RequestError(400, f"observations: {error}") from error
    prediction = with_bin_probabilities(model.predict(task))
    latent, noise = (prediction[name] for name in (conventions.LATENT_VARIANCE, conventions.NOISE_VARIANCE))
    return prediction.assign(
        {conventions.EPISTEMIC_SHARE: (latent.dims, epistemic_share(latent.values, noise.values))}
    )


def _fill_grid(grid: dict, model, outputs: list[str], limits: ServiceLimits) -> dict[str, Any]:
    """A posted grid with null gaps filled by :func:`weatherunc.fill`."""
    from weatherunc.filling import fill

    x, y, crs = _grid_axes(grid, "observations", limits)
    try:
        values = np.asarray(
            [[np.nan if value is None else value for value in row] for row in grid.get("values", [])],
            dtype=np.float64,
        )
    except (TypeError, ValueError) as error:
        raise RequestError(400, "observations: 'values' must be rows of numbers or null") from error
    if values.shape != (y.size, x.size):
        raise RequestError(
            400, f"observations: 'values' is {values.shape}, expected (len(y), len(x)) = {(y.size, x.size)}"
        )
    data = xr.DataArray(
        values,
        dims=(conventions.Y, conventions.X),
        coords={conventions.Y: y, conventions.X: x},
        name=conventions.PRECIPITATION,
        attrs={"units": str(grid.get("units", conventions.PRECIPITATION_UNITS))},
    )
    try:
        filled = fill(data, model=model, crs=crs, progress=False)
    except ValueError as error:
        raise RequestError(400, f"observations: {error}") from error
    return {
        "type": "Grid",
        "model": getattr(model, "name", ""),
        "calibration": calibration_label(filled.attrs),
        "x": x.tolist(),
        "y": y.tolist(),
        "crs": crs.to_string(),
        **_axes_of(filled),
        "variables": {
            **{name: _plain(filled[name].values) for name in outputs},
            conventions.OBSERVATION: filled[conventions.OBSERVATION].values.tolist(),
        },
        "observation_flags": str(filled[conventions.OBSERVATION].attrs.get("flag_meanings", "")),
    }
