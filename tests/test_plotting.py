"""Maps and diagnostics render with the right content: extents, colour bars, blank NaN, coastlines."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import matplotlib.contour

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyproj  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from weatherunc.geolocation import grid_mapping  # noqa: E402
from weatherunc.metrics import pit_histogram, reliability_diagram  # noqa: E402
from weatherunc.plotting import (  # noqa: E402
    bin_frequency_figure,
    combined_map,
    coverage_figure,
    distance_figure,
    exceedance_map,
    mean_map,
    model_comparison_figure,
    observed_map,
    pit_figure,
    reliability_figure,
    save_figure,
    std_map,
    uncertainty_maps,
    variance_split_map,
)
from weatherunc.plotting.colours import (  # noqa: E402
    DRY_COLOUR,
    probability_scale,
    rate_scale,
    transformed_spread_scale,
)
from weatherunc.plotting.maps import low_confidence, map_projection  # noqa: E402

#: The KNMI radar grid's CRS (polar stereographic, no area of use) and LAEA Europe (has one).
KNMI_CRS = "+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60 +a=6378137 +b=6356752 +x_0=0 +y_0=0"
CRSS = {"knmi": (KNMI_CRS, 0.0, -3_950_000.0), "laea": ("EPSG:3035", 3_950_000.0, 3_250_000.0)}


def _grid(crs_name: str) -> xr.Dataset:
    definition, x0, y0 = CRSS[crs_name]
    ny, nx = 40, 50
    x = x0 + 2000.0 * np.arange(nx)
    y = y0 - 2000.0 * np.arange(ny)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    rate = np.where(xx < 25, 8.0 * np.exp(-((xx - 12) ** 2 + (yy - 20) ** 2) / 60.0), 0.0)
    observed = rate.copy()
    hidden = (yy >= 10) & (yy < 30) & (xx >= 30) & (xx < 45)
    observed[hidden] = np.nan
    mean = np.where(hidden, 3.0, np.nan)
    std = np.where(hidden, np.where(xx < 38, 0.5, 6.0), np.nan)
    probability = np.stack([np.where(hidden, p, np.nan) for p in (0.9, 0.6, 0.2, 0.05)], axis=-1)
    dataset = xr.Dataset(
        {
            "precipitation": (("y", "x"), observed),
            "precipitation_mean": (("y", "x"), mean),
            "precipitation_std": (("y", "x"), std),
            "exceedance_probability": (("y", "x", "threshold"), probability),
        },
        coords={
            "y": y,
            "x": x,
            "threshold": [0.1, 1.0, 5.0, 10.0],
            "time": np.datetime64("2010-08-26T06:40"),
        },
        attrs={"model": "gp"},
    )
    dataset["crs"] = grid_mapping(pyproj.CRS.from_user_input(definition))
    return dataset


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def natural_earth(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = data_dir / "natural_earth" / "cartopy_data"
    monkeypatch.setenv("CARTOPY_DATA_DIR", str(root))
    return root


def _pixel(figure, axes, x: float, y: float) -> np.ndarray:
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())
    column, row = axes.transData.transform((x, y))
    return image[int(round(image.shape[0] - row)), int(round(column))]


@pytest.mark.parametrize("crs_name", sorted(CRSS))
def test_mean_map_extent_colour_bar_and_blank_nan(crs_name: str, natural_earth: Path) -> None:
    grid = _grid(crs_name)
    figure = mean_map(grid)
    axes = figure.axes[0]
    x, y = grid.x.values, grid.y.values
    np.testing.assert_allclose(
        axes.get_extent(crs=axes.projection),
        (x.min() - 1000, x.max() + 1000, y.min() - 1000, y.max() + 1000),
        rtol=1e-6,
    )
    colour_bar = figure.axes[1]
    assert colour_bar.get_ylim() == pytest.approx((0.0, 100.0))
    assert "mm h-1" in colour_bar.get_ylabel()
    assert "2010-08-26 06:40 UTC" in axes.get_title() and "gp" in axes.get_title()
    white = _pixel(figure, axes, x[5], y[5])  # observed, so not predicted: NaN in the mean
    np.testing.assert_array_equal(white[:3], [255, 255, 255])
    predicted = _pixel(figure, axes, x[33], y[20])  # mean 3 mm/h
    scale = rate_scale()
    expected = np.round(255 * np.array(scale.colormap(scale.norm(3.0))[:3]))
    np.testing.assert_allclose(predicted[:3], expected, atol=2)


def test_variance_split_map_shows_each_std_and_the_epistemic_share(natural_earth: Path) -> None:
    grid = _grid("knmi")
    hidden = grid["precipitation_mean"].notnull()
    grid["latent_variance"] = xr.where(hidden, xr.where(grid.x < grid.x[38], 0.0225, 0.49), np.nan)
    grid["noise_variance"] = xr.where(hidden, 0.16, np.nan)
    figure = variance_split_map(grid)
    epistemic, aleatoric, share = (figure.axes[number] for number in (0, 2, 4))
    assert [axes.get_title().split(" · ")[0] for axes in (epistemic, aleatoric, share)] == [
        "epistemic std",
        "aleatoric std",
        "epistemic share of the variance",
    ]
    x, y = grid.x.values, grid.y.values
    spread, probability = transformed_spread_scale(), probability_scale()
    for axes, column, value, scale in [
        (epistemic, 33, 0.15, spread),  # sqrt(0.0225)
        (epistemic, 42, 0.7, spread),  # sqrt(0.49)
        (aleatoric, 42, 0.4, spread),
        (share, 33, 0.0225 / 0.1825, probability),
        (share, 42, 0.49 / 0.65, probability),
    ]:
        expected = np.round(255 * np.array(scale.colormap(scale.norm(value))[:3]))
        np.testing.assert_allclose(_pixel(figure, axes, x[column], y[20])[:3], expected, atol=2)
    with pytest.raises(ValueError, match="'latent_variance'"):
        variance_split_map(grid.drop_vars("latent_variance"))


def test_observed_map_shows_dry_apart_from_nan(natural_earth: Path) -> None:
    grid = _grid("laea")
    figure = observed_map(grid)
    axes = figure.axes[0]
    dry = _pixel(figure, axes, grid.x.values[48], grid.y.values[2])  # observed, 0 mm/h
    hidden = _pixel(figure, axes, grid.x.values[40], grid.y.values[15])  # unobserved
    np.testing.assert_allclose(
        dry[:3], np.round(255 * np.array(matplotlib.colors.to_rgb(DRY_COLOUR))), atol=2
    )
    np.testing.assert_array_equal(hidden[:3], [255, 255, 255])
    contours = [child for child in axes.get_children() if isinstance(child, matplotlib.contour.ContourSet)]
    assert contours, "the unobserved region is outlined"


def test_coastlines_from_local_files_and_a_single_warning_without(
    natural_earth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cartopy.mpl.feature_artist import FeatureArtist

    figure = std_map(_grid("knmi"))
    features = [child for child in figure.axes[0].get_children() if isinstance(child, FeatureArtist)]
    assert len(features) == 2  # coastline and borders
    monkeypatch.delenv("CARTOPY_DATA_DIR")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = uncertainty_maps(_grid("knmi"))
    messages = [str(warning.message) for warning in caught if "Natural Earth" in str(warning.message)]
    assert len(messages) == 1
    assert not [
        child for axes in figure.axes for child in axes.get_children() if isinstance(child, FeatureArtist)
    ]
    assert len(figure.axes) == 8  # four maps and their colour bars


def test_exceedance_map_range_and_unknown_threshold(natural_earth: Path) -> None:
    figure = exceedance_map(_grid("laea"), 1.0)
    assert figure.axes[1].get_ylim() == pytest.approx((0.0, 1.0))
    assert "P(rate > 1 mm/h)" in figure.axes[0].get_title()
    with pytest.raises(
        ValueError, match="threshold 2 mm/h is not in the prediction; available: 0.1, 1, 5, 10"
    ):
        exceedance_map(_grid("laea"), 2.0)


def test_combined_map_hatches_low_confidence(natural_earth: Path, tmp_path: Path) -> None:
    grid = _grid("laea")
    hatched = low_confidence(grid)
    assert int(hatched.sum()) == 20 * 7  # std 6 > mean 3 where x >= 38
    figure = combined_map(grid)
    hatches = [
        child
        for child in figure.axes[0].get_children()
        if isinstance(child, matplotlib.contour.ContourSet) and "////" in (child.hatches or [])
    ]
    assert hatches
    path = save_figure(figure, tmp_path / "combined.png")
    assert plt.imread(path).shape[0] > 100


def test_map_projection_bounds_cover_the_data() -> None:
    projection = map_projection(pyproj.CRS.from_user_input(KNMI_CRS), (0.0, 1e5, -4e6, -3.9e6))
    x0, x1, y0, y1 = projection.bounds
    assert x0 < 0 < 1e5 < x1 and y0 < -4e6 < -3.9e6 < y1


def _truth_and_forecast() -> tuple[xr.DataArray, xr.DataArray, xr.Dataset]:
    rng = np.random.default_rng(0)
    probability = rng.uniform(size=4000)
    event = rng.uniform(size=4000) < probability
    gaussian = xr.Dataset(
        {
            "precipitation_mean": ("point", rng.normal(size=4000)),
            "precipitation_std": ("point", np.ones(4000)),
        }
    )
    return xr.DataArray(probability, dims="point"), xr.DataArray(event, dims="point"), gaussian


def test_reliability_figure_plots_the_diagram_and_counts() -> None:
    probability, event, _ = _truth_and_forecast()
    diagram = reliability_diagram(probability, event, bins=10)
    figure = reliability_figure({"model": diagram})
    top, bottom = figure.axes
    line = top.get_lines()[1]
    np.testing.assert_allclose(line.get_ydata(), diagram.observed_frequency.values)
    np.testing.assert_allclose(
        sorted(patch.get_height() for patch in bottom.patches), sorted(diagram["count"].values)
    )
    assert bottom.get_yscale() == "log"


def test_bin_frequency_figure_draws_observed_beside_forecast_per_panel() -> None:
    labels = ["0-0.1", "0.1-1", ">1"]
    frequencies = {
        f"radar {number}": (np.array([0.5, 0.3, 0.2]) * (number + 1) / 4, np.array([0.6, 0.3, 0.1]))
        for number in range(4)
    }
    figure = bin_frequency_figure(frequencies, labels)
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(figure.axes) == 6 and len(visible) == 4
    for axes, (label, (observed, forecast)) in zip(visible, frequencies.items()):
        heights = [patch.get_height() for patch in axes.patches]
        np.testing.assert_allclose(heights, np.concatenate([observed, forecast]))
        assert axes.get_title() == label and [tick.get_text() for tick in axes.get_xticklabels()] == labels


def test_pit_coverage_distance_and_comparison_figures() -> None:
    _, _, gaussian = _truth_and_forecast()
    truth = xr.DataArray(np.random.default_rng(1).normal(size=4000), dims="point")
    histogram = pit_histogram(gaussian, truth, bins=10)
    figure = pit_figure({"gp": histogram})
    np.testing.assert_allclose([patch.get_height() for patch in figure.axes[0].patches], histogram.values)
    figure = coverage_figure({"gp": {0.5: 0.48, 0.9: 0.91}, "anp": {0.5: 0.55, 0.9: 0.86}})
    assert [list(line.get_ydata()) for line in figure.axes[0].get_lines()[1:]] == [[0.48, 0.91], [0.55, 0.86]]
    by_distance = xr.Dataset(
        {
            "crps": ("distance", [0.1, 0.3]),
            "coverage_90": ("distance", [0.9, 0.85]),
            "count": ("distance", [10, 5]),
            "mean_distance": ("distance", [1.0, 6.0]),
        }
    )
    figure = distance_figure({"gp": by_distance})
    np.testing.assert_allclose(figure.axes[0].get_lines()[0].get_xdata(), [1.0, 6.0])
    np.testing.assert_allclose(figure.axes[1].get_lines()[0].get_ydata(), [0.9, 0.85])
    figure = model_comparison_figure(
        {
            "gp": {"crps": 0.2, "rmse": 1, "nlpd": 0.1, "coverage_90": 0.9},
            "kriging": {"crps": 0.3, "rmse": 2, "nlpd": 0.2, "coverage_90": 0.95},
        }
    )
    assert [patch.get_height() for patch in figure.axes[0].patches] == [0.2, 0.3]
