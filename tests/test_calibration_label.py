"""The calibration label of map titles."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from weatherunc.heads.calibration import Calibration, StdScaling, TemperatureScaling
from weatherunc.heads.calibration_label import calibration_label


def test_self_calibration_is_labelled_with_its_window() -> None:
    fitted = {"method": "self", "scores": {"window_frames": 1}}
    assert calibration_label({"self_calibration": json.dumps(fitted)}) == "self-calibrated"
    fitted["scores"]["window_frames"] = 3
    assert calibration_label({"self_calibration": json.dumps(fitted)}) == "self-calibrated, 3 frames"
    skipped = {"method": "none", "reason": "12 pseudo-targets"}
    assert calibration_label({"self_calibration": json.dumps(skipped)}).startswith("uncalibrated")


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
