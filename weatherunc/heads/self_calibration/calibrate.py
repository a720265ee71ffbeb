"""Applying self-calibration to a model's prediction, and models that calibrate themselves."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import xarray as xr

from weatherunc.evaluation import distance_to_nearest_context
from weatherunc.heads.self_calibration.fitting import fit_self_calibration
from weatherunc.heads.self_calibration.history import EarlierFrame
from weatherunc.heads.self_calibration.options import SelfCalibrationOptions, model_options
from weatherunc.heads.self_calibration.pseudo_targets import (
    pooled_pseudo_targets,
    predicted_bin_weights,
    pseudo_predictions,
)
from weatherunc.models.interface import SharesFit
from weatherunc.tasks import Task


def self_calibrate(
    model,
    task: Task,
    prediction: xr.Dataset | None = None,
    options: SelfCalibrationOptions | Mapping[str, object] | None = None,
    history: Sequence[Task] = (),
) -> xr.Dataset:
    """``model``'s prediction of ``task`` calibrated on pseudo-targets of ``task``'s own contexts.

    ``history``: earlier frames of the same place (a rolling window), whose contexts give more
    pseudo-targets, weighted to ``task``'s target distances and pooled with ``task``'s own; their
    targets are not used. A frame with too few contexts is skipped.

    A model fitted per task (the GP: ``shared_fit``) predicts the pseudo-tasks with the fit of
    ``task`` itself, so that each costs a conditioning, not a fit; the hyperparameters have then
    seen the hidden contexts too, a small share of the data for a handful of parameters.
    ``prediction``: the model's prediction of ``task`` when already made (a GP then fits once
    more). ``options``: :class:`SelfCalibrationOptions` used as they are, or None or a mapping of
    fields over the model's own defaults
    (:func:`~weatherunc.heads.self_calibration.options.model_options`). The attribute
    ``self_calibration`` (JSON) records the fit, the pseudo-target count and
    the before/after scores on them, or why nothing was fitted; ``self_calibration_seconds`` its
    cost.
    """
    options = model_options(model, options)
    pseudo_model = model
    if prediction is None and hasattr(model, "predict_sharing_fit"):
        prediction, pseudo_model = model.predict_sharing_fit(task)
    elif prediction is None:
        prediction = model.predict(task)
    started = time.perf_counter()
    if pseudo_model is model and hasattr(model, "shared_fit"):
        pseudo_model = model.shared_fit(task)
    real_distance = distance_to_nearest_context(task)  # what every pseudo-task is weighted to
    try:
        pseudo = pseudo_predictions(pseudo_model, task, options, real_distance)
    except ValueError as error:
        return prediction.assign_attrs(
            self_calibration=json.dumps({"method": "none", "reason": str(error)}),
            self_calibration_seconds=0.0,
        )
    if history:
        earlier = []
        for frame in history:
            try:
                earlier.append(pseudo_predictions(pseudo_model, frame, options, real_distance))
            except ValueError:
                continue  # an earlier frame with too few contexts adds nothing
        pseudo = pooled_pseudo_targets([pseudo, *earlier])
    probability_weights = (
        predicted_bin_weights(pseudo.prediction, prediction, options.max_matching_weight)
        if options.probability_matching == "predicted_bin"
        and options.probability != "none"
        and not options.probability_weighted
        else None  # no scaler, or one weighted to the distances instead
    )
    fitted = fit_self_calibration(
        pseudo.prediction,
        pseudo.truth,
        pseudo.distance,
        pseudo.weights,
        options,
        discs=pseudo.discs,
        probability_weights=probability_weights,
    )
    if fitted is None:
        reason = (
            f"{pseudo.truth.size} pseudo-targets in {pseudo.draws} draws, fewer than "
            f"minimum_targets={options.minimum_targets}"
        )
        return prediction.assign_attrs(
            self_calibration=json.dumps({"method": "none", "reason": reason}),
            self_calibration_seconds=time.perf_counter() - started,
        )
    fitted = replace(
        fitted,
        scores={
            **fitted.scores,
            "draws": pseudo.draws,
            "window_frames": 1 + len(history),
            "options": options.changed(),
        },
    )
    calibrated = fitted.apply(prediction, real_distance)
    return calibrated.assign_attrs(
        self_calibration=json.dumps(fitted.to_dict()), self_calibration_seconds=time.perf_counter() - started
    )


def self_calibration_record(prediction: xr.Dataset, **where: int) -> dict[str, object] | None:
    """What a self-calibrated prediction recorded (its ``self_calibration`` attribute, parsed), after
    ``where`` (e.g. its frame and tile numbers) and its ``seconds``; None for a prediction that was
    not self-calibrated."""
    if "self_calibration" not in prediction.attrs:
        return None
    return {
        **where,
        "seconds": round(float(prediction.attrs.get("self_calibration_seconds", 0.0)), 3),
        **json.loads(prediction.attrs["self_calibration"]),
    }


@dataclass
class SelfCalibrated:
    """Any model whose predictions calibrate themselves (:func:`self_calibrate`); named ``MODEL+self``.

    ``options``: :class:`SelfCalibrationOptions`, or None or a mapping of fields (plain values, as a
    job's YAML gives them) over the model's own defaults
    (:func:`~weatherunc.heads.self_calibration.options.model_options`). ``earlier_frames``: the
    rolling window, earlier frames of the grid the tasks are drawn on; each task also draws
    pseudo-targets from their observations where its contexts lie (:meth:`EarlierFrame.task_like`).
    """

    model: object
    options: SelfCalibrationOptions | Mapping[str, object] | None = None
    name: str = ""
    earlier_frames: tuple[EarlierFrame, ...] = ()

    def __post_init__(self) -> None:
        self.options = model_options(self.model, self.options)
        self.name = self.name or f"{self.model.name}+self"

    @property
    def checkpoint_sha256(self) -> str:
        """The wrapped model's checkpoint, if any."""
        return getattr(self.model, "checkpoint_sha256", "")

    def predict(self, task: Task) -> xr.Dataset:
        """The wrapped model's prediction of ``task``, self-calibrated; ``model`` attribute ``NAME+self``."""
        history = []
        for number, frame in enumerate(self.earlier_frames):
            try:
                history.append(frame.task_like(task, seed=self.options.seed + number))
            except ValueError:
                continue  # nothing observed there in that frame
        prediction = self_calibrate(self.model, task, options=self.options, history=history)
        return prediction.assign_attrs(
            model=self.name,
            predict_seconds=float(prediction.attrs.get("predict_seconds", 0.0))
            + float(prediction.attrs["self_calibration_seconds"]),
        )


@dataclass
class SelfCalibratedSharingFit(SelfCalibrated):
    """:class:`SelfCalibrated` around a model that can share one fit among tasks (the GP;
    :class:`~weatherunc.models.interface.SharesFit`): :meth:`shared_fit` fits the wrapped model once
    and self-calibrates every task with that fit, so that the tiles of a frame share it."""

    def shared_fit(self, task: Task) -> SelfCalibrated:
        """The wrapped model fitted once on ``task``'s contexts, self-calibrating every task it
        predicts (its pseudo-tasks predicted with that fit)."""
        return SelfCalibrated(self.model.shared_fit(task), self.options, self.name, self.earlier_frames)


def self_calibrated(
    model: object,
    options: SelfCalibrationOptions | Mapping[str, object] | None = None,
    name: str = "",
    earlier_frames: tuple[EarlierFrame, ...] = (),
) -> SelfCalibrated:
    """``model`` wrapped to calibrate itself: a :class:`SelfCalibratedSharingFit` where ``model``
    can share a fit (``weatherunc.fill`` and the jobs' ``tiling.share_fit`` then fit it once per
    frame), else a :class:`SelfCalibrated`."""
    kind = SelfCalibratedSharingFit if isinstance(model, SharesFit) else SelfCalibrated
    return kind(model, options, name, earlier_frames)
