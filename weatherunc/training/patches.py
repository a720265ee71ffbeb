"""Training frames for the convolutional neural process: whole frames, windows of large frames,
and a cache of both in one ``.npz`` so that a resumed run does not read the radar files again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyproj
from tqdm import tqdm

from weatherunc import conventions
from weatherunc.geolocation import crs_of
from weatherunc.loading import open_dataset
from weatherunc.tasks import WET_THRESHOLD, planar_kilometres
from weatherunc.training.config import FrameSelection, selected_frames
from weatherunc.training.convnp_config import PatchSelection
from weatherunc.training.sampling import BankedFrame, FrameBank

CACHE_FORMAT = "weatherunc.FrameBankCache/1"


def _lonlat_box(x: np.ndarray, y: np.ndarray, crs: pyproj.CRS) -> tuple[float, float, float, float]:
    """(lon_min, lat_min, lon_max, lat_max) of the window with axes ``x``, ``y`` (edges sampled)."""
    edge_x = np.concatenate([x, x, np.full(y.size, x[0]), np.full(y.size, x[-1])])
    edge_y = np.concatenate([np.full(x.size, y[0]), np.full(x.size, y[-1]), y, y])
    if crs.is_geographic:
        longitude, latitude = edge_x, edge_y
    else:
        longitude, latitude = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
            edge_x, edge_y
        )
    return (
        float(np.min(longitude)),
        float(np.min(latitude)),
        float(np.max(longitude)),
        float(np.max(latitude)),
    )


def overlaps(box: tuple[float, float, float, float], other: tuple[float, float, float, float]) -> bool:
    """Whether two (lon_min, lat_min, lon_max, lat_max) boxes intersect."""
    return box[0] <= other[2] and other[0] <= box[2] and box[1] <= other[3] and other[1] <= box[3]


def load_patches(
    selection: PatchSelection, *, progress: bool = True, open_options: dict | None = None
) -> list[BankedFrame]:
    """The windows of :class:`PatchSelection` ``selection``, each a frame with its own planar km axes
    (geographic grids: a local plane about the window's centre, so a window far from the frame's
    centre is not stretched)."""
    dataset = open_dataset(selection.dataset, **(open_options or {}))
    crs = crs_of(dataset)
    x, y = dataset[conventions.X].values, dataset[conventions.Y].values
    precipitation = selected_frames(dataset, selection)
    size = selection.patch_pixels
    ny, nx = precipitation.shape[1:]
    if size > min(ny, nx):
        raise ValueError(f"patch_pixels={size} does not fit the {ny}x{nx} frames of {selection.dataset}")
    rng = np.random.default_rng(selection.seed)
    frames: list[BankedFrame] = []
    for index in tqdm(
        range(precipitation.sizes["time"]),
        desc=f"cutting {selection.dataset}",
        disable=not progress,
        leave=False,
    ):
        values = np.asarray(precipitation.isel(time=index).values, dtype=np.float32)
        label = f"{selection.dataset} {str(precipitation.time.values[index])[:16]}"
        for number in range(selection.patches_per_frame):
            want_wet = rng.uniform() >= selection.dry_fraction
            for _attempt in range(500):
                top, left = int(rng.integers(0, ny - size + 1)), int(rng.integers(0, nx - size + 1))
                rows, columns = slice(top, top + size), slice(left, left + size)
                if selection.exclude_box is not None and overlaps(
                    _lonlat_box(x[columns], y[rows], crs), selection.exclude_box
                ):
                    continue
                window = values[rows, columns]
                observed = np.isfinite(window)
                if observed.mean() < max(selection.min_observed_fraction, 1e-9):
                    continue
                if want_wet and np.mean(window[observed] > WET_THRESHOLD) < selection.min_wet_fraction:
                    continue
                x_km, y_km = planar_kilometres(x[columns], y[rows], crs)
                if crs.is_geographic:
                    y_km = y_km - y_km.mean()
                frames.append(
                    BankedFrame(
                        window.copy(), x_km, y_km, f"{label} window {number} at row {top}, column {left}"
                    )
                )
                break
    return frames


def load_frames(
    selections: list[FrameSelection | PatchSelection],
    *,
    progress: bool = True,
    open_options: dict | None = None,
) -> FrameBank:
    """Every selected whole frame and window, in the order of ``selections``."""
    frames: list[BankedFrame] = []
    for selection in selections:
        if isinstance(selection, PatchSelection):
            frames.extend(load_patches(selection, progress=progress, open_options=open_options))
        else:
            frames.extend(FrameBank.load([selection], progress=progress, open_options=open_options).frames)
    return FrameBank(tuple(frames))


def save_bank(bank: FrameBank, path: Path, key: str) -> Path:
    """Write ``bank`` to ``path`` (``.npz``, no pickles) under ``key``; written to a temporary name and
    renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": CACHE_FORMAT, "key": key, "labels": [frame.label for frame in bank.frames]}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for number, frame in enumerate(bank.frames):
        arrays[f"values{number}"], arrays[f"x{number}"], arrays[f"y{number}"] = (
            frame.values,
            frame.x_km,
            frame.y_km,
        )
    temporary = path.with_name(path.name + ".partial.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)
    return path


def load_bank(path: Path, key: str) -> FrameBank | None:
    """The bank cached at ``path`` under ``key``, or None when there is none or it was cached for other
    selections."""
    if not Path(path).is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        header = json.loads(arrays["header"].tobytes())
        if header.get("format") != CACHE_FORMAT or header.get("key") != key:
            return None
        return FrameBank(
            tuple(
                BankedFrame(arrays[f"values{n}"], arrays[f"x{n}"], arrays[f"y{n}"], label)
                for n, label in enumerate(header["labels"])
            )
        )
