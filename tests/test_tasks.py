"""Task samplers: reproducible, truth withheld, contexts and targets disjoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

from weatherunc.tasks import (
    Task,
    blocked_station_folds,
    gauge_network,
    masked_blocks,
    planar_kilometres,
    random_pixels,
    station_folds,
)

CRS = pyproj.CRS.from_epsg(3035)


def _frame(seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.5, 2.0, size=(60, 80))
    values[:10, :10] = np.nan
    return xr.DataArray(
        values, dims=("y", "x"), coords={"y": 1000.0 * np.arange(60)[::-1], "x": 1000.0 * np.arange(80)}
    )


def _pixels(task: Task) -> set[tuple[float, float]]:
    return set(map(tuple, task.target_coordinates)), set(map(tuple, task.context_coordinates))


@pytest.mark.parametrize("sampler", [random_pixels, masked_blocks, gauge_network])
def test_samplers_are_seeded_disjoint_and_observed(sampler) -> None:
    frame = _frame()
    first, second, other = (
        sampler(frame, seed=3, crs=CRS),
        sampler(frame, seed=3, crs=CRS),
        sampler(frame, seed=4, crs=CRS),
    )
    np.testing.assert_array_equal(first.target_coordinates, second.target_coordinates)
    assert not np.array_equal(first.context_coordinates, other.context_coordinates)
    targets, contexts = _pixels(first)
    assert not targets & contexts
    assert np.all(np.isfinite(first.context_values)) and np.all(np.isfinite(first.target_values))
    values = frame.values[first.target_coords["row"], first.target_coords["column"]]
    np.testing.assert_array_equal(values, first.target_values)
    assert first.description


def test_masked_blocks_hide_contiguous_squares() -> None:
    task = masked_blocks(
        _frame(), block_pixels=8, count=2, halo_pixels=4, max_context=None, max_target=None, seed=1, crs=CRS
    )
    assert task.n_target <= 2 * 64
    rows, columns = task.target_coords["row"], task.target_coords["column"]
    assert rows.max() - rows.min() >= 7 and columns.max() - columns.min() >= 7
    distances = np.min(
        np.linalg.norm(task.context_coordinates[:, None] - task.target_coordinates[None], axis=2), axis=1
    )
    assert distances.max() <= np.hypot(4, 4) + 1e-9, "contexts come from the halo around the blocks"


def test_gauge_network_density_and_clustering() -> None:
    frame = _frame()
    uniform = gauge_network(frame, fraction=0.02, seed=0, crs=CRS)
    clustered = gauge_network(frame, fraction=0.02, clustered=True, clusters=2, seed=0, crs=CRS)
    observed = int(np.isfinite(frame.values).sum())
    assert uniform.n_context == round(0.02 * observed)
    spread = lambda task: task.context_coordinates.std(axis=0).mean()  # noqa: E731
    assert spread(clustered) < spread(uniform)


def test_planar_kilometres() -> None:
    x, y = planar_kilometres(np.array([0.0, 1000.0]), np.array([5000.0]), CRS)
    np.testing.assert_allclose(x, [0.0, 1.0])
    lon, lat = planar_kilometres(np.array([-98.0, -97.0]), np.array([30.0, 31.0]), pyproj.CRS.from_epsg(4326))
    assert lon[1] - lon[0] == pytest.approx(111.19 * np.cos(np.deg2rad(30.5)), rel=1e-3)
    assert lat[1] - lat[0] == pytest.approx(111.19, rel=1e-3)
    geographic = pyproj.CRS.from_epsg(4326)
    # 0-360 longitudes are the same places as -180-180 ones; the antimeridian is no wall
    shifted, _ = planar_kilometres(np.array([365.19, 365.21]), np.array([52.0, 52.1]), geographic)
    plain, _ = planar_kilometres(np.array([5.19, 5.21]), np.array([52.0, 52.1]), geographic)
    np.testing.assert_allclose(shifted, plain, atol=1e-9)
    across, _ = planar_kilometres(np.array([179.9, -179.9]), np.array([0.0, 0.0]), geographic)
    assert across[1] - across[0] == pytest.approx(0.2 * 111.19, rel=1e-3)
    world, _ = planar_kilometres(np.arange(0.0, 360.0, 30.0), np.zeros(12), geographic)
    assert np.all(np.diff(world) > 0)  # spread over the globe: kept in order, not wrapped


def test_task_checks_its_arrays() -> None:
    with pytest.raises(ValueError, match="at least one context"):
        Task(np.zeros((0, 2)), np.zeros(0), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="finite"):
        Task(np.zeros((1, 2)), np.array([np.nan]), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        Task(np.zeros((1, 3)), np.zeros(1), np.zeros((1, 2)), np.zeros(1))


def test_task_refuses_impossible_values_coordinates_and_duplicates() -> None:
    context, target = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([[5.0, 5.0]])
    values, covariates = np.array([0.0, 1.0, 2.0]), np.ones((3, 1))
    Task(
        context,
        values,
        target,
        np.array([np.nan]),
        context_covariates=covariates,
        target_covariates=covariates[:1],
    )
    with pytest.raises(ValueError, match=r"context_values .* >= 0 .*-0\.5"):
        Task(context, np.array([0.0, -0.5, 2.0]), target, np.zeros(1))
    with pytest.raises(ValueError, match="context_values .* finite"):
        Task(context, np.array([0.0, np.inf, 2.0]), target, np.zeros(1))
    with pytest.raises(ValueError, match=r"context_values .* 500 mm/h.*600"):
        Task(context, np.array([0.0, 600.0, 2.0]), target, np.zeros(1))
    for bad in (np.nan, np.inf):
        moved = context.copy()
        moved[1, 0] = bad
        with pytest.raises(ValueError, match="context_coordinates .* finite"):
            Task(moved, values, target, np.zeros(1))
        with pytest.raises(ValueError, match="target_coordinates .* finite"):
            Task(context, values, np.array([[5.0, bad]]), np.zeros(1))
        with pytest.raises(ValueError, match="target_covariates .* finite"):
            Task(
                context,
                values,
                target,
                np.zeros(1),
                context_covariates=covariates,
                target_covariates=np.array([[bad]]),
            )
    with pytest.raises(ValueError, match="context_covariates .* finite"):
        Task(
            context,
            values,
            target,
            np.zeros(1),
            context_covariates=np.array([[1.0], [np.nan], [1.0]]),
            target_covariates=covariates[:1],
        )
    duplicated = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="context_coordinates .* 3 duplicated .* merge .*averag"):
        Task(duplicated, np.arange(5.0), target, np.zeros(1))


def test_station_folds(data_dir: Path) -> None:
    from weatherunc.loading import open_dataset

    stations = open_dataset("sic97", data_dir=data_dir).compute()
    folds = list(station_folds(stations, folds=5, seed=0, covariates=("altitude_m",)))
    assert len(folds) == 5 and sum(task.n_target for task in folds) == 100
    held_out = np.concatenate([task.target_coords["station"] for task in folds])
    assert sorted(held_out) == sorted(stations.station.values)
    assert folds[0].context_covariates.shape == (80, 1)
    assert len(list(station_folds(stations))) == 100
    truth = folds[0].observed_truth()
    assert truth.dims == ("station",) and truth.attrs["units"] == "mm h-1"


def _clustered_stations(seed: int = 0, clusters: int = 12, per_cluster: int = 10) -> xr.Dataset:
    """``precipitation(station)`` at ``clusters`` x ``per_cluster`` stations: tight clusters (3 km) over
    300 km, EPSG:3035."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(50_000.0, 350_000.0, size=(clusters, 2))
    points = np.repeat(centres, per_cluster, axis=0) + rng.normal(
        0.0, 3_000.0, size=(clusters * per_cluster, 2)
    )
    n = len(points)
    return xr.Dataset(
        {"precipitation": ("station", rng.gamma(0.5, 2.0, size=n)), "crs": ((), 0, CRS.to_cf())},
        coords={
            "station": np.arange(100, 100 + n),
            "x": ("station", points[:, 0]),
            "y": ("station", points[:, 1]),
            "altitude_m": ("station", rng.uniform(200.0, 2000.0, size=n)),
        },
    )


def _nearest_context_km(folds: list[Task]) -> np.ndarray:
    """Distance from every target ``[n_station]`` to its nearest context, pooled over folds."""
    return np.concatenate(
        [
            np.min(
                np.linalg.norm(task.target_coordinates[:, None] - task.context_coordinates[None], axis=2),
                axis=1,
            )
            for task in folds
        ]
    )


def _check_blocked_folds(stations: xr.Dataset, *, block_km: float, folds: int, ratio: float) -> None:
    """Whole blocks held out, each station a target once, sizes balanced, and the median distance from a
    target to its
    nearest context more than ``ratio`` times that of random folds (:func:`station_folds`, same folds and
    seed)."""
    blocked = list(
        blocked_station_folds(stations, block_km=block_km, folds=folds, seed=0, covariates=("altitude_m",))
    )
    n = stations.sizes["station"]
    assert len(blocked) == folds
    held_out = np.concatenate([task.target_coords["station"] for task in blocked])
    assert len(held_out) == n and sorted(held_out) == sorted(stations.station.values), (
        "every station is a target exactly once"
    )
    block_of = lambda coordinates: set(map(tuple, np.floor(coordinates / block_km).astype(int)))  # noqa: E731
    for task in blocked:
        assert task.n_context + task.n_target == n and task.context_covariates.shape == (task.n_context, 1)
        assert not block_of(task.target_coordinates) & block_of(task.context_coordinates), task.description
        assert np.all(np.isfinite(task.target_values)) and task.target_dim == "station"
    all_coordinates = np.concatenate([task.target_coordinates for task in blocked])
    _, block_sizes = np.unique(np.floor(all_coordinates / block_km).astype(int), axis=0, return_counts=True)
    sizes = [task.n_target for task in blocked]
    assert max(sizes) - min(sizes) <= block_sizes.max(), f"fold sizes {sizes} are not balanced"
    random = list(station_folds(stations, folds=folds, seed=0))
    blocked_distance, random_distance = (
        np.median(_nearest_context_km(blocked)),
        np.median(_nearest_context_km(random)),
    )
    assert blocked_distance > ratio * random_distance, (
        f"median nearest-context distance: blocked {blocked_distance:.1f} km, random {random_distance:.1f} km"
    )


def test_blocked_station_folds_on_clustered_stations() -> None:
    _check_blocked_folds(_clustered_stations(), block_km=50.0, folds=5, ratio=5.0)


def test_blocked_station_folds_on_sic97(data_dir: Path) -> None:
    from weatherunc.loading import open_dataset

    stations = open_dataset("sic97", data_dir=data_dir).compute()
    # SIC97 is less clustered than the synthetic set: random folds' median is 11 km, blocked 16 km (25
    # km blocks) and 20 km (50 km)
    _check_blocked_folds(stations, block_km=25.0, folds=10, ratio=1.3)
    _check_blocked_folds(stations, block_km=50.0, folds=10, ratio=1.7)


def test_blocked_station_folds_are_seeded() -> None:
    stations = _clustered_stations()

    def targets(seed: int) -> list:
        return [
            task.target_coords["station"]
            for task in blocked_station_folds(stations, block_km=40.0, folds=4, seed=seed)
        ]

    first, again, other = targets(3), targets(3), targets(4)
    assert len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other)), "another seed gives other folds"


def test_blocked_station_folds_refuse_bad_arguments() -> None:
    stations = _clustered_stations()
    for block_km in (0.0, -10.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="block_km must be finite and > 0"):
            list(blocked_station_folds(stations, block_km=block_km, folds=3))
    with pytest.raises(ValueError, match="folds must be at least 2, got 1"):
        list(blocked_station_folds(stations, block_km=50.0, folds=1))
    with pytest.raises(ValueError, match=r"folds=3 is more than the 1 block\(s\) of 10000 km"):
        list(blocked_station_folds(stations, block_km=10_000.0, folds=3))


def test_wettest_window() -> None:
    from weatherunc.tasks import wettest_window

    values = np.zeros((50, 60))
    values[30:40, 45:55] = 2.0
    frame = xr.DataArray(values, dims=("y", "x"), coords={"y": np.arange(50.0), "x": np.arange(60.0)})
    window = wettest_window(frame, 10)
    assert float(window.min()) == 2.0 and window.shape == (10, 10)
    with pytest.raises(ValueError, match="does not fit"):
        wettest_window(frame, 51)


def test_masked_blocks_over_rain() -> None:
    frame = _frame()
    values = frame.values.copy()
    values[:, :40] = 0.0
    dry_left = frame.copy(data=values)
    task = masked_blocks(dry_left, block_pixels=8, count=2, min_wet_fraction=0.5, seed=2, crs=CRS)
    assert task.target_coords["column"].min() >= 40 - 8
