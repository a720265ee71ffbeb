"""The calibration label of map titles."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from weatherunc.heads.calibration import Calibration, StdScaling, TemperatureScaling
from weatherunc.heads.calibration_label import calibration_label


def test_self_calibration_is_labelled_with_what_it_kept_and_its_window() -> None:
    def label(std_kept: bool, probability: dict | None, frames: int = 1) -> str:
        fitted = {
            "method": "self",
            "probability": probability,
            "scores": {"window_frames": frames, "std_factors_kept": std_kept},
        }
        return calibration_label({"self_calibration": json.dumps(fitted)})

    temperature = {"method": "temperature", "temperature": 1.2}
    assert label(True, temperature) == "self-calibrated"
    assert label(True, temperature, frames=3) == "self-calibrated, 3 frames"
    assert label(True, None) == "self-calibrated (intervals)"
    assert label(False, temperature) == "self-calibrated (bins)"
    assert label(False, None, frames=2) == "self-checked, unchanged, 2 frames"
    skipped = {"method": "none", "reason": "12 pseudo-targets"}
    assert calibration_label({"self_calibration": json.dumps(skipped)}).startswith("uncalibrated")


def test_a_filled_frames_fits_per_tile_are_labelled_together() -> None:
    fitted = {"method": "self", "probability": None, "scores": {"std_factors_kept": True}}
    skipped = {"method": "none", "reason": "12 pseudo-targets"}
    tiles = [{"frame": 0, "tile": tile, "seconds": 0.1, **fitted} for tile in range(3)]
    assert calibration_label({"self_calibration": json.dumps(tiles)}) == "self-calibrated (intervals)"
    mixed = [*tiles, {"frame": 0, "tile": 3, "seconds": 0.0, **skipped}]
    assert calibration_label({"self_calibration": json.dumps(mixed)}) == "self-calibrated in 3 of 4 tiles"
    assert calibration_label({"self_calibration": "[]"}) == "uncalibrated"


def test_job_self_calibration_and_fitted_calibrations_are_labelled() -> None:
    assert calibration_label({"calibration": "self: each tile ..."}) == "self-calibrated per tile"
    assert (
        calibration_label({"calibration": "self: ...", "calibration_window_frames": 2})
        == "self-calibrated per tile, 2 frames"
    )
    fitted = Calibration(TemperatureScaling(1.0706), StdScaling(1.2), fitted_on="validation")
    assert calibration_label(fitted.attrs()) == "temperature 1.07, std x 1.20"
    assert calibration_label(Calibration(std=StdScaling(0.9)).attrs()) == "std x 0.90"
    assert calibration_label({}) == "uncalibrated"


def test_a_map_title_names_the_calibration() -> None:
    from weatherunc.plotting.maps import _title

    field = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    assert _title(
        field, "mean", {"model": "gp", "calibration_method": "temperature", "calibration_temperature": 1.5}
    ) == ("mean · gp · temperature 1.50")
    assert _title(field, "observed", {}) == "observed"
    observed = field.rename("precipitation")  # observations carry no calibration
    assert _title(observed, "observed", {"model": "gp", "calibration": "self: ..."}) == "observed · gp"
