"""Deep ensembles: several independently trained members as one mixture (Lakshminarayanan et al. 2017).

The predictive distribution of the transformed rate is the equally weighted mixture of the
members' Gaussians, summarised by its moments: ``latent_variance`` = mean of the members'
latent variances + variance of their means (disagreement between members is epistemic),
``noise_variance`` = mean of their noise variances. Bin probabilities are averaged; predictive
entropy and mutual information come from the members' bin probabilities.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from weatherunc import conventions
from weatherunc.heads.bins import entropy_and_mutual_information
from weatherunc.models.interface import Interpolator
from weatherunc.models.predictive import task_prediction
from weatherunc.prediction import ATTRS, BinProbabilities, Prediction
from weatherunc.tasks import Task

#: Attributes of the ensemble's mutual information (between bin and member).
INFORMATION_ATTRS = {
    **ATTRS[conventions.MUTUAL_INFORMATION],
    "long_name": "mutual information between bin and ensemble member (epistemic)",
}


@dataclass
class EnsembleInterpolator:
    """Mixture of ``members`` (each an :class:`~weatherunc.models.registry.Interpolator` with the same
    transform)."""

    members: Sequence[Interpolator]
    name: str = "ensemble"
    posterior_sha256: str = ""

    @property
    def checkpoint_sha256(self) -> str:
        """One sha256 of the members' checkpoints and of the weight posterior they were drawn from
        (``posterior_sha256``, for SWAG or Bayes by Backprop samples); empty where none of them has
        one. A job's fingerprint and a calibration's record hold it, so that a member or a posterior
        changed in place is noticed."""
        parts = [str(getattr(member, "checkpoint_sha256", "") or "") for member in self.members]
        if not any(parts) and not self.posterior_sha256:
            return ""
        return hashlib.sha256("|".join([*parts, self.posterior_sha256]).encode()).hexdigest()

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(self.members)}")

    @property
    def self_calibration_defaults(self) -> dict[str, object]:
        """The members' own self-calibration options
        (:func:`weatherunc.heads.self_calibration.model_options`) where they all have the same,
        else none."""
        chosen = [dict(getattr(member, "self_calibration_defaults", None) or {}) for member in self.members]
        return chosen[0] if all(options == chosen[0] for options in chosen) else {}

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset of the mixture, with ``bin_probability``, ``predictive_entropy`` and
        ``mutual_information`` where every member predicts bin probabilities."""
        start = time.perf_counter()
        datasets = [member.predict(task) for member in self.members]
        predictions = [Prediction.from_dataset(dataset) for dataset in datasets]
        transforms = {prediction.single_transform() for prediction in predictions}
        if len(transforms) != 1:
            raise ValueError("ensemble members must share one precipitation transform")
        means = np.stack([prediction.transformed_mean for prediction in predictions])  # [members, n_target]
        latent = np.mean([prediction.latent_variance for prediction in predictions], axis=0) + means.var(0)
        noise = np.mean([prediction.noise_variance for prediction in predictions], axis=0)
        mixture = task_prediction(
            task,
            transformed_mean=means.mean(0),
            latent_variance=latent,
            noise_variance=noise,
            transform=transforms.pop(),
            model=self.name,
            attrs={
                "members": len(predictions),
                "member_checkpoints": [p.attrs.get("checkpoint_sha256", "") for p in predictions],
                **({"checkpoint_sha256": self.checkpoint_sha256} if self.checkpoint_sha256 else {}),
                **({"posterior_sha256": self.posterior_sha256} if self.posterior_sha256 else {}),
                "fit_seconds": 0.0,
                "predict_seconds": time.perf_counter() - start,
            },
        )
        if all(prediction.bins is not None for prediction in predictions):
            draws = np.stack([prediction.bins.probability for prediction in predictions])
            entropy, information = entropy_and_mutual_information(draws)
            first = predictions[0].bins
            bins = BinProbabilities(
                draws.mean(0),
                first.edges,
                first.source,
                predictive_entropy=entropy,
                mutual_information=information,
            )
            mixture = mixture.with_bins(
                bins,
                variable_attrs={
                    conventions.BIN_PROBABILITY: datasets[0][conventions.BIN_PROBABILITY].attrs,
                    conventions.MUTUAL_INFORMATION: INFORMATION_ATTRS,
                },
            )
        return mixture.to_dataset()
