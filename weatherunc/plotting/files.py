"""Figures of a whole prediction store, written as PNG files (``weatherunc plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.plotting.maps import (
    combined_map,
    exceedance_map,
    mean_map,
    observed_map,
    save_figure,
    std_map,
    uncertainty_maps,
)
from weatherunc.store import COMPLETE_ATTRIBUTE


def open_prediction_store(store: Path) -> xr.Dataset:
    """A complete prediction store; refuses one that is missing or was not finished."""
    store = Path(store)
    if not store.exists():
        raise FileNotFoundError(f"prediction store {store} does not exist")
    dataset = xr.open_zarr(store, consolidated=False)
    if not dataset.attrs.get(COMPLETE_ATTRIBUTE):
        raise ValueError(
            f"prediction store {store} is not marked complete ({COMPLETE_ATTRIBUTE} is missing): it was not "
            "finished"
        )
    for name in (
        conventions.PRECIPITATION_MEAN,
        conventions.PRECIPITATION_STD,
        conventions.EXCEEDANCE_PROBABILITY,
    ):
        if name not in dataset:
            raise ValueError(f"prediction store {store} has no variable {name!r}")
    return dataset


def plot_frame(
    prediction: xr.Dataset, out_dir: Path, *, threshold: float = 1.0, stem: str = ""
) -> list[Path]:
    """Every map of one gridded prediction ``(y, x)``; returns the PNG paths."""
    out_dir = Path(out_dir)
    prefix = f"{stem}_" if stem else ""
    figures = {
        "mean": mean_map(prediction),
        "std": std_map(prediction),
        f"exceedance_{threshold:g}mmh": exceedance_map(prediction, threshold),
        "combined": combined_map(prediction),
        "panel": uncertainty_maps(prediction, threshold=threshold),
    }
    if conventions.PRECIPITATION in prediction:
        figures["observed"] = observed_map(prediction)
    return [save_figure(figure, out_dir / f"{prefix}{name}.png") for name, figure in figures.items()]


def plot_store(store: Path, out_dir: Path, *, threshold: float = 1.0) -> list[Path]:
    """Maps of every frame of a prediction store, named by time (``YYYYmmddTHHMM_mean.png``...)."""
    dataset = open_prediction_store(store)
    written: list[Path] = []
    if "time" in dataset.dims:
        for index in range(dataset.sizes["time"]):
            frame = dataset.isel(time=index).load()
            stem = (
                str(np.datetime_as_string(frame["time"].values, unit="m")).replace("-", "").replace(":", "")
            )
            written += plot_frame(frame, out_dir, threshold=threshold, stem=stem)
    else:
        frame = dataset.load()
        stem = (
            str(np.datetime_as_string(frame["time"].values, unit="m")).replace("-", "").replace(":", "")
            if "time" in frame.coords
            else ""
        )
        written += plot_frame(frame, out_dir, threshold=threshold, stem=stem)
    return written
