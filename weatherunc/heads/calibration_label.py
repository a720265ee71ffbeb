"""A short label of the calibration a prediction carries, for map titles and summaries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def calibration_label(attrs: Mapping[str, Any]) -> str:
    """What calibration the attributes of a prediction (or of a job's output) record.

    Reads the attributes that :func:`weatherunc.heads.self_calibration.self_calibrate`
    (``self_calibration``, JSON), :meth:`weatherunc.heads.calibration.Calibration.attrs`
    (``calibration_method``, ``calibration_temperature``, ``calibration_std_factor``) and the batch
    jobs (``calibration``: ``"self: ..."`` and ``calibration_window_frames``) write. Returns e.g.
    ``"self-calibrated"`` (``"(intervals)"`` or ``"(bins)"`` where only one part was kept),
    ``"self-checked, unchanged"`` (self-calibration kept neither), ``"self-calibrated, 3 frames"``,
    ``"temperature 1.07, std x 1.20"`` or ``"uncalibrated"``. A filled frame's record is a list, one
    fit per frame and tile (:func:`weatherunc.fill`): their label where all agree, else e.g.
    ``"self-calibrated in 3 of 4 tiles"``.
    """
    record = attrs.get("self_calibration")
    if record:
        fitted = json.loads(record) if isinstance(record, str) else record
        if isinstance(fitted, list):
            return _tiles_label([calibration_label({"self_calibration": dict(part)}) for part in fitted])
        fitted = dict(fitted)
        if fitted.get("method") != "self":
            return "uncalibrated (self-calibration: too few pseudo-targets)"
        scores = fitted.get("scores", {})
        frames = int(scores.get("window_frames", 1))
        window = f", {frames} frames" if frames > 1 else ""
        intervals, bins = bool(scores.get("std_factors_kept", True)), fitted.get("probability") is not None
        if not (intervals or bins):
            return f"self-checked, unchanged{window}"  # the pseudo-targets gave no evidence to act on
        kept = "" if intervals and bins else " (intervals)" if intervals else " (bins)"
        return f"self-calibrated{kept}{window}"
    job = attrs.get("calibration")
    if isinstance(job, str) and job.startswith("self"):
        frames = int(attrs.get("calibration_window_frames", 1))
        return "self-calibrated per tile" + (f", {frames} frames" if frames > 1 else "")
    parts = []
    method = attrs.get("calibration_method")
    if method == "temperature" and "calibration_temperature" in attrs:
        parts.append(f"temperature {float(attrs['calibration_temperature']):.2f}")
    elif method:
        parts.append(f"{method} scaling")
    if "calibration_std_factor" in attrs:
        parts.append(f"std x {float(attrs['calibration_std_factor']):.2f}")
    return ", ".join(parts) if parts else "uncalibrated"


def _tiles_label(labels: list[str]) -> str:
    """One label for the fits of a frame's tiles (their labels ``labels``)."""
    if not labels:
        return "uncalibrated"
    if len(set(labels)) == 1:
        return labels[0]
    calibrated = sum(label.startswith("self-calibrated") for label in labels)
    return f"self-calibrated in {calibrated} of {len(labels)} tiles"
