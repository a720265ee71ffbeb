"""The one placement of masked blocks (:mod:`weatherunc.tasks.blocks`) and the random streams of
its callers, pinned.

Recorded benchmark scores (test tasks of :func:`~weatherunc.tasks.masked_blocks`), batch jobs'
withheld targets (:func:`~weatherunc.pipelines.stages.target_mask`) and training runs (the block
masks of :mod:`weatherunc.training.sampling` and :mod:`weatherunc.training.grid_sampling`) are
reproducible only while every caller draws the same random numbers in the same order. The
expected values below were computed with each caller's own placement loop, before they shared
:func:`~weatherunc.tasks.blocks.place_blocks`; a changed digest means those records can no
longer be reproduced.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyproj
import pytest
import xarray as xr

from weatherunc.pipelines.job_config import JobConfig, ModelOptions, TargetOptions
from weatherunc.pipelines.stages import target_mask
from weatherunc.tasks import masked_blocks
from weatherunc.tasks.blocks import Block, BlockRules, SideDraw, cover, place_blocks
from weatherunc.training import grid_sampling, sampling
from weatherunc.training.config import SamplingOptions
from weatherunc.training.convnp_config import GridSamplingOptions

CRS = pyproj.CRS.from_epsg(3035)


def _rates(ny: int, nx: int) -> np.ndarray:
    """Rates [mm/h] ``[ny, nx]``: rain cells on a dry background, drizzle stripes, an unobserved corner."""
    rows, columns = np.indices((ny, nx))
    cells = np.sin(rows / 4.0) * np.cos(columns / 6.0)
    rates = np.where(cells > 0.3, 5.0 * cells, 0.0) + np.where((rows + 2 * columns) % 11 == 0, 0.2, 0.0)
    rates[(rows > 0.7 * ny) & (columns > 0.6 * nx)] = np.nan
    return rates


def _frame(ny: int, nx: int) -> xr.DataArray:
    """:func:`_rates` on 1 km pixels: planar x = column km, y = -row km."""
    return xr.DataArray(
        _rates(ny, nx), dims=("y", "x"), coords={"y": -1000.0 * np.arange(ny), "x": 1000.0 * np.arange(nx)}
    )


def _digest(*arrays: np.ndarray) -> str:
    """First 16 hex digits of the sha256 of the arrays' int64 values."""
    hashed = hashlib.sha256()
    for array in arrays:
        hashed.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return hashed.hexdigest()[:16]


def _masked_blocks_digest(size: int, seeds: range, **options: object) -> tuple[list[str], str]:
    descriptions, arrays = [], []
    for seed in seeds:
        task = masked_blocks(_frame(size, size), seed=seed, crs=CRS, **options)
        descriptions.append(task.description)
        arrays += [task.target_coords["row"], task.target_coords["column"], np.rint(task.context_coordinates)]
    return descriptions, _digest(*arrays)


def test_masked_blocks_tiny_frame_targets_by_value() -> None:
    task = masked_blocks(_frame(16, 16), block_pixels=3, count=2, halo_pixels=1, seed=4, crs=CRS)
    assert task.description == "2 masked blocks of 3 px, halo 1 px, seed 4"
    assert task.target_coords["row"].tolist() == EXPECTED_TINY_ROWS
    assert task.target_coords["column"].tolist() == EXPECTED_TINY_COLUMNS


def test_masked_blocks_streams_are_pinned() -> None:
    validation = dict(block_pixels=16, count=2, halo_pixels=16, max_context=1000, max_target=2000)
    descriptions, digest = _masked_blocks_digest(64, range(4), min_wet_fraction=0.2, **validation)
    assert (descriptions, digest) == EXPECTED_MASKED_VALIDATION
    scarce = dict(block_pixels=12, count=6, halo_pixels=4, min_wet_fraction=0.6, max_context=None)
    assert _masked_blocks_digest(48, range(4), **scarce) == EXPECTED_MASKED_SCARCE


def test_target_mask_stream_is_pinned() -> None:
    rates, masks = _rates(48, 48), []
    for seed in range(4):
        job = JobConfig(
            name="pinned",
            dataset="none",
            model=ModelOptions(name="idw"),
            targets=TargetOptions(blocks=4, block_pixels=8, min_wet_fraction=0.3),
            seed=seed,
        )
        masks += [np.flatnonzero(target_mask(rates, job, frame)) for frame in (0, 2)]
    assert [mask.size for mask in masks] == EXPECTED_TARGET_MASK_SIZES
    assert _digest(*masks) == EXPECTED_TARGET_MASK


def test_convnp_training_blocks_stream_is_pinned() -> None:
    options = GridSamplingOptions(block_pixels=(4, 20), halo_pixels=(2, 8))
    always_over_rain = GridSamplingOptions(block_pixels=(4, 20), halo_pixels=(2, 8), wet_block_fraction=1.0)
    arrays = []
    for rates, chosen, seeds in (
        (_rates(40, 40), options, range(6)),
        (np.zeros((30, 30)), always_over_rain, range(3)),
    ):
        for seed in seeds:  # nowhere wet: each block where its last of 20 attempts put it
            rng = np.random.default_rng([seed, 1])
            hidden, near = grid_sampling._blocks(rates, chosen, rng)
            arrays += [np.flatnonzero(hidden), np.flatnonzero(near), rng.integers(2**62, size=2)]
    assert _digest(*arrays) == EXPECTED_CONVNP_BLOCKS


def test_neural_process_training_blocks_stream_is_pinned() -> None:
    options = SamplingOptions(block_km=(3.0, 30.0))
    arrays = []
    for pixel_km in (0.5, 2.0):
        for seed in range(6):
            rng = np.random.default_rng([seed, 1])
            arrays += [
                np.flatnonzero(sampling._blocks((40, 40), pixel_km, options, rng)),
                rng.integers(2**62, size=2),
            ]
    assert _digest(*arrays) == EXPECTED_NEURAL_PROCESS_BLOCKS


def test_place_blocks_keeps_the_spacing_and_the_observed_fraction() -> None:
    observed = np.ones((30, 30), dtype=bool)
    observed[:, :10] = False
    rules = BlockRules(attempts=500, touch_far_edge=False, spacing=2, min_observed_fraction=0.75)
    blocks = place_blocks((30, 30), 4, 5, rules, np.random.default_rng(1), observed=observed)
    assert len(blocks) == 4
    for number, block in enumerate(blocks):
        assert observed[block.window()].mean() >= 0.75
        assert block.top + block.size < 30 and block.left + block.size < 30  # never the last row/column
        others = cover((30, 30), blocks[:number] + blocks[number + 1 :])
        assert not others[block.window(2)].any()


def test_place_blocks_stops_or_falls_back_when_no_block_fits() -> None:
    wet = np.zeros((20, 20), dtype=bool)
    shared = BlockRules(attempts=30, min_wet_fraction=0.5)
    assert place_blocks((20, 20), 3, 4, shared, np.random.default_rng(0), wet=wet) == []
    per_block = BlockRules(attempts=30, attempts_per_block=True, min_wet_fraction=0.5)
    rng, replay = np.random.default_rng(0), np.random.default_rng(0)
    blocks = place_blocks((20, 20), 2, 4, per_block, rng, wet=wet)
    # 30 attempts of (top, left) per block: block k goes where draws 60 k + 58 and 60 k + 59 put it
    draws = np.array([int(replay.integers(0, 17)) for _ in range(120)])
    assert blocks == [Block(int(draws[58]), int(draws[59]), 4), Block(int(draws[118]), int(draws[119]), 4)]


def test_side_draw_bounds() -> None:
    rng = np.random.default_rng(0)
    pixels = [SideDraw((4, 9), largest=7).draw(rng) for _ in range(200)]
    assert set(pixels) == {4, 5, 6, 7}
    kilometres = [SideDraw((3.0, 30.0), largest=10, smallest=2, pixel_km=2.0).draw(rng) for _ in range(200)]
    assert min(kilometres) == 2 and max(kilometres) == 10
    with pytest.raises(ValueError, match="wet pixels"):
        place_blocks((10, 10), 1, 3, BlockRules(attempts=1, min_wet_fraction=0.1), rng)


#: Computed with the placement loops the callers had before they shared place_blocks.
EXPECTED_TINY_ROWS = [9, 9, 9, 10, 10, 10, 11, 11, 11, 11, 11, 11, 12, 12, 12, 13, 13, 13]
EXPECTED_TINY_COLUMNS = [12, 13, 14, 12, 13, 14, 6, 7, 8, 12, 13, 14, 6, 7, 8, 6, 7, 8]
EXPECTED_MASKED_VALIDATION = (
    [f"2 masked blocks of 16 px, halo 16 px, seed {seed}" for seed in range(4)],
    "5b20bbd6e0e61c76",
)
EXPECTED_MASKED_SCARCE = (  # 4 of the 6 blocks fit in the 1200 attempts
    [f"4 masked blocks of 12 px, halo 4 px, seed {seed}" for seed in range(4)],
    "62caca76cabe8fe0",
)
EXPECTED_TARGET_MASK_SIZES = [256, 232, 224, 256, 251, 256, 256, 256]
EXPECTED_TARGET_MASK = "67c3cc432fa61fb4"
EXPECTED_CONVNP_BLOCKS = "6d5dc8e6c24d1967"
EXPECTED_NEURAL_PROCESS_BLOCKS = "75d5e1be69ceaf31"
