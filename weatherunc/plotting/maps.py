"""Cartopy maps of a gridded prediction in the data's own projection.

The gridded dataset has dims (y, x) (a ``time`` coordinate optional) and the variables of a
prediction (``precipitation_mean``, ``precipitation_std``, ``exceedance_probability``...),
optionally the input ``precipitation`` (NaN = unobserved) and a CF ``crs`` grid mapping.
Coastlines and borders come from Natural Earth shapefiles under ``$CARTOPY_DATA_DIR``; nothing
is ever downloaded: without them the map is drawn without coastlines and one warning says so.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pyproj
import xarray as xr
from matplotlib.figure import Figure

from weatherunc import conventions
from weatherunc.heads.calibration_label import calibration_label
from weatherunc.plotting.colours import (
    ColourScale,
    probability_scale,
    rate_scale,
    spread_scale,
    transformed_spread_scale,
)
from weatherunc.prediction import epistemic_share

NATURAL_EARTH_RESOLUTION = "50m"
#: A predicted pixel is "low confidence" in the combined view when its predictive std exceeds
#: this ratio times its predictive mean (or times 0.1 mm/h where the mean is below that).
LOW_CONFIDENCE_RATIO = 1.0
WET_RATE = 0.1


def natural_earth_files(resolution: str = NATURAL_EARTH_RESOLUTION) -> dict[str, Path] | None:
    """Coastline and border shapefiles under ``$CARTOPY_DATA_DIR``, or None when absent."""
    root = os.environ.get("CARTOPY_DATA_DIR")
    if not root:
        return None
    base = Path(root) / "shapefiles" / "natural_earth"
    files = {
        "coastline": base / "physical" / f"ne_{resolution}_coastline.shp",
        "borders": base / "cultural" / f"ne_{resolution}_admin_0_boundary_lines_land.shp",
    }
    return files if all(path.exists() for path in files.values()) else None


def crs_of_grid(dataset: xr.Dataset | xr.DataArray, crs: pyproj.CRS | None = None) -> pyproj.CRS:
    """``crs`` if given, else the dataset's CF grid mapping (variable or ``crs_wkt`` attribute)."""
    if crs is not None:
        return crs
    if isinstance(dataset, xr.Dataset) and conventions.CRS_VARIABLE in dataset:
        return pyproj.CRS.from_cf(dataset[conventions.CRS_VARIABLE].attrs)
    if "crs_wkt" in dataset.attrs:
        return pyproj.CRS.from_wkt(dataset.attrs["crs_wkt"])
    raise ValueError("the grid has no CRS: pass crs=... or include a CF 'crs' grid-mapping variable")


def map_projection(crs: pyproj.CRS, extent: tuple[float, float, float, float]):
    """A cartopy projection for ``crs``; ``extent`` (x0, x1, y0, y1) bounds it when the CRS has no area of
    use."""
    import cartopy.crs as ccrs

    if crs.is_geographic:
        return ccrs.PlateCarree()
    projection = ccrs.Projection(crs)
    if projection.bounds is None:
        x0, x1, y0, y1 = extent
        pad = 0.5 * max(x1 - x0, y1 - y0)
        projection.bounds = (x0 - pad, x1 + pad, y0 - pad, y1 + pad)
        projection.threshold = (x1 - x0) / 100.0
    return projection


def _extent(grid: xr.DataArray) -> tuple[float, float, float, float]:
    x, y = grid[conventions.X].values, grid[conventions.Y].values
    dx, dy = abs(x[1] - x[0]) if x.size > 1 else 1.0, abs(y[1] - y[0]) if y.size > 1 else 1.0
    return float(x.min() - dx / 2), float(x.max() + dx / 2), float(y.min() - dy / 2), float(y.max() + dy / 2)


def _geography(axes, files: dict[str, Path] | None) -> None:
    """Coastlines and borders; ``files=None`` warns and draws none, ``{}`` draws none silently."""
    if files == {}:
        return
    if files is None:
        warnings.warn(
            "Natural Earth shapefiles not found under $CARTOPY_DATA_DIR: drawing the map without coastlines "
            "and borders",
            stacklevel=2,
        )
        return
    import cartopy.crs as ccrs
    from cartopy.feature import ShapelyFeature
    from cartopy.io.shapereader import Reader

    for name, width in (("coastline", 0.7), ("borders", 0.5)):
        feature = ShapelyFeature(
            Reader(str(files[name])).geometries(),
            ccrs.PlateCarree(),
            facecolor="none",
            edgecolor="black",
            linewidth=width,
        )
        axes.add_feature(feature, zorder=3)


def _title(grid: xr.DataArray | xr.Dataset, label: str, attrs: dict) -> str:
    when = ""
    if "time" in grid.coords and grid["time"].size == 1:
        when = str(np.datetime_as_string(grid["time"].values, unit="m")).replace("T", " ") + " UTC"
    model = attrs.get("model", "")
    observed = getattr(grid, "name", None) == conventions.PRECIPITATION
    calibration = calibration_label(attrs) if model and not observed else ""  # a model's output only
    return " · ".join(part for part in (label, when, model, calibration) if part)


def _panel(
    figure: Figure,
    position,
    field: xr.DataArray,
    scale: ColourScale,
    label: str,
    units: str,
    crs: pyproj.CRS,
    attrs: dict,
    files,
):
    import cartopy.crs as ccrs

    extent = _extent(field)
    projection = map_projection(crs, extent)
    axes = figure.add_subplot(*position, projection=projection)
    source = ccrs.PlateCarree() if crs.is_geographic else projection
    x, y = field[conventions.X].values, field[conventions.Y].values
    mesh = axes.pcolormesh(
        x,
        y,
        np.ma.masked_invalid(field.transpose(conventions.Y, conventions.X).values),
        cmap=scale.colormap,
        norm=scale.norm,
        transform=source,
        shading="nearest",
        zorder=1,
    )
    axes.set_extent(extent, crs=source)
    _geography(axes, files)
    colour_bar = figure.colorbar(
        mesh, ax=axes, orientation="vertical", shrink=0.8, extend=scale.extend, ticks=scale.levels
    )
    colour_bar.set_label(units)
    axes.set_title(_title(field, label, attrs), fontsize=9)
    return axes, source


def _single(
    field: xr.DataArray, scale: ColourScale, label: str, units: str, crs: pyproj.CRS, attrs: dict
) -> Figure:
    figure = plt.figure(figsize=(6.4, 5.6))
    _panel(figure, (1, 1, 1), field, scale, label, units, crs, attrs, natural_earth_files())
    return figure


def _outline(axes, mask: xr.DataArray, source) -> None:
    if mask.any():
        axes.contour(
            mask[conventions.X].values,
            mask[conventions.Y].values,
            mask.values.astype(float),
            levels=[0.5],
            colors="black",
            linewidths=1.0,
            linestyles="--",
            transform=source,
            zorder=4,
        )


def observed_map(
    dataset: xr.Dataset, *, crs: pyproj.CRS | None = None, predicted_mask: xr.DataArray | None = None
) -> Figure:
    """The observed field ``precipitation`` with the predicted (unobserved) region outlined (dashed)."""
    crs = crs_of_grid(dataset, crs)
    figure = plt.figure(figsize=(6.4, 5.6))
    axes, source = _panel(
        figure,
        (1, 1, 1),
        dataset[conventions.PRECIPITATION],
        rate_scale(),
        "observed",
        "precipitation rate [mm h-1]",
        crs,
        dataset.attrs,
        natural_earth_files(),
    )
    mask = (
        predicted_mask
        if predicted_mask is not None
        else dataset[conventions.PRECIPITATION_MEAN].notnull()
        if conventions.PRECIPITATION_MEAN in dataset
        else None
    )
    if mask is not None:
        _outline(axes, mask, source)
    return figure


def mean_map(dataset: xr.Dataset, *, crs: pyproj.CRS | None = None) -> Figure:
    """Predictive mean rate."""
    return _single(
        dataset[conventions.PRECIPITATION_MEAN],
        rate_scale(),
        "predictive mean",
        "precipitation rate [mm h-1]",
        crs_of_grid(dataset, crs),
        dataset.attrs,
    )


def std_map(dataset: xr.Dataset, *, crs: pyproj.CRS | None = None) -> Figure:
    """Predictive standard deviation of the rate."""
    return _single(
        dataset[conventions.PRECIPITATION_STD],
        spread_scale(),
        "predictive standard deviation",
        "standard deviation [mm h-1]",
        crs_of_grid(dataset, crs),
        dataset.attrs,
    )


def exceedance_map(dataset: xr.Dataset, threshold: float = 1.0, *, crs: pyproj.CRS | None = None) -> Figure:
    """``P(rate > threshold)``; ``threshold`` must be one of the dataset's thresholds."""
    field = _threshold(dataset, threshold)
    return _single(
        field,
        probability_scale(),
        f"P(rate > {threshold:g} mm/h)",
        "probability",
        crs_of_grid(dataset, crs),
        dataset.attrs,
    )


def _threshold(dataset: xr.Dataset, threshold: float) -> xr.DataArray:
    available = dataset[conventions.THRESHOLD].values
    if not np.any(np.isclose(available, threshold)):
        raise ValueError(
            f"threshold {threshold:g} mm/h is not in the prediction; available: "
            f"{', '.join(f'{t:g}' for t in available)}"
        )
    return dataset[conventions.EXCEEDANCE_PROBABILITY].sel(threshold=threshold, method="nearest")


def low_confidence(dataset: xr.Dataset, ratio: float = LOW_CONFIDENCE_RATIO) -> xr.DataArray:
    """Where the predictive std exceeds ``ratio`` x max(predictive mean, 0.1 mm/h) (predicted pixels only)."""
    return (
        dataset[conventions.PRECIPITATION_STD]
        > ratio * np.maximum(dataset[conventions.PRECIPITATION_MEAN], WET_RATE)
    ) & dataset[conventions.PRECIPITATION_MEAN].notnull()


def combined_map(
    dataset: xr.Dataset, *, crs: pyproj.CRS | None = None, ratio: float = LOW_CONFIDENCE_RATIO
) -> Figure:
    """Observed and predicted mean in one field, low-confidence predictions hatched, predicted region
    outlined."""
    crs = crs_of_grid(dataset, crs)
    field = dataset[conventions.PRECIPITATION_MEAN]
    if conventions.PRECIPITATION in dataset:
        field = dataset[conventions.PRECIPITATION].fillna(field)
    figure = plt.figure(figsize=(6.4, 5.6))
    axes, source = _panel(
        figure,
        (1, 1, 1),
        field,
        rate_scale(),
        f"observed + predicted (hatched: std > {ratio:g} x mean)",
        "precipitation rate [mm h-1]",
        crs,
        dataset.attrs,
        natural_earth_files(),
    )
    hatched = low_confidence(dataset, ratio)
    if hatched.any():
        axes.contourf(
            hatched[conventions.X].values,
            hatched[conventions.Y].values,
            hatched.values.astype(float),
            levels=[0.5, 1.5],
            hatches=["////"],
            colors="none",
            transform=source,
            zorder=2,
        )
    _outline(axes, dataset[conventions.PRECIPITATION_MEAN].notnull(), source)
    return figure


def uncertainty_maps(dataset: xr.Dataset, *, threshold: float = 1.0, crs: pyproj.CRS | None = None) -> Figure:
    """Observed, mean, standard deviation and ``P(rate > threshold)`` side by side (2 x 2)."""
    crs = crs_of_grid(dataset, crs)
    files = natural_earth_files()
    figure = plt.figure(figsize=(12, 10))
    panels = []
    if conventions.PRECIPITATION in dataset:
        panels.append(
            (dataset[conventions.PRECIPITATION], rate_scale(), "observed", "precipitation rate [mm h-1]")
        )
    panels += [
        (
            dataset[conventions.PRECIPITATION_MEAN],
            rate_scale(),
            "predictive mean",
            "precipitation rate [mm h-1]",
        ),
        (
            dataset[conventions.PRECIPITATION_STD],
            spread_scale(),
            "predictive standard deviation",
            "standard deviation [mm h-1]",
        ),
        (_threshold(dataset, threshold), probability_scale(), f"P(rate > {threshold:g} mm/h)", "probability"),
    ]
    for number, (field, scale, label, units) in enumerate(panels, start=1):
        axes, source = _panel(figure, (2, 2, number), field, scale, label, units, crs, dataset.attrs, files)
        if number == 1 and conventions.PRECIPITATION in dataset:
            _outline(axes, dataset[conventions.PRECIPITATION_MEAN].notnull(), source)
        files = files if files is not None else {}  # warn once per figure
    figure.tight_layout()
    return figure


def variance_split_map(dataset: xr.Dataset, *, crs: pyproj.CRS | None = None) -> Figure:
    """Epistemic and aleatoric standard deviations side by side, and the epistemic share.

    The predictive variance of the transformed rate is ``latent_variance`` (epistemic: what more
    observations or a better model would remove) plus ``noise_variance`` (aleatoric: the rain's own
    variability at a pixel); the panels show ``sqrt`` of each on one colour scale (units of the
    transformed rate, e.g. log(rate + 1)) and ``latent_variance / (latent + noise)`` (Kendall & Gal
    2017, "What uncertainties do we need in Bayesian deep learning for computer vision?",
    NeurIPS). A model without an epistemic part shows an epistemic std of 0 everywhere.
    """
    for name in (conventions.LATENT_VARIANCE, conventions.NOISE_VARIANCE):
        if name not in dataset:
            raise ValueError(f"variance_split_map: the dataset has no {name!r} variable")
    crs = crs_of_grid(dataset, crs)
    files = natural_earth_files()
    latent, noise = dataset[conventions.LATENT_VARIANCE], dataset[conventions.NOISE_VARIANCE]
    if noise.dims != latent.dims:
        noise = noise.broadcast_like(latent)
    share = latent.copy(data=epistemic_share(latent.values, noise.values))
    panels = [
        (np.sqrt(latent), transformed_spread_scale(), "epistemic std", "std of the transformed rate"),
        (np.sqrt(noise), transformed_spread_scale(), "aleatoric std", "std of the transformed rate"),
        (share, probability_scale(), "epistemic share of the variance", "share"),
    ]
    figure = plt.figure(figsize=(18, 5.2))
    for number, (field, scale, label, units) in enumerate(panels, start=1):
        _panel(figure, (1, 3, number), field, scale, label, units, crs, dataset.attrs, files)
        files = files if files is not None else {}  # warn once per figure
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path, *, dpi: int = 120) -> Path:
    """Write ``figure`` as PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path
