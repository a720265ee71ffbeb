"""Deep ensembles: several independently trained members as one mixture (Lakshminarayanan et al. 2017).

The predictive distribution of the transformed rate is the equally weighted mixture of the
members' Gaussians, summarised by its moments: ``latent_variance`` = mean of the members'
latent variances + variance of their means (disagreement between members is epistemic),
``noise_variance`` = mean of their noise variances. Bin probabilities are averaged; predictive
entropy and mutual information come from the members' bin probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from weatherunc.evaluation import transform_of
from weatherunc.heads.bins import BIN, entropy_and_mutual_information, with_rain_probability
from weatherunc.models.interface import Interpolator
from weatherunc.models.predictive import prediction_dataset
from weatherunc.tasks import Task


@dataclass
class EnsembleInterpolator:
    """Mixture of ``members`` (each an :class:`~weatherunc.models.registry.Interpolator` with the same "
    "transform)."""

    members: Sequence[Interpolator]
    name: str = "ensemble"

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(self.members)}")

    def predict(self, task: Task) -> xr.Dataset:
        """Prediction Dataset of the mixture, with ``bin_probability``, ``predictive_entropy`` and "
        "``mutual_information``."""
        start = time.perf_counter()
        predictions = [member.predict(task) for member in self.members]
        transforms = {transform_of(prediction) for prediction in predictions}
        if len(transforms) != 1:
            raise ValueError("ensemble members must share one precipitation transform")
        means = np.stack(
            [prediction["transformed_mean"].values for prediction in predictions]
        )  # [members, n_target]
        latent = np.mean(
            [prediction["latent_variance"].values for prediction in predictions], axis=0
        ) + means.var(0)
        noise = np.mean([prediction["noise_variance"].values for prediction in predictions], axis=0)
        dataset = prediction_dataset(
            task,
            transformed_mean=means.mean(0),
            latent_variance=latent,
            noise_variance=noise,
            transform=transforms.pop(),
            model=self.name,
            attrs={
                "members": len(predictions),
                "member_checkpoints": [p.attrs.get("checkpoint_sha256", "") for p in predictions],
                "fit_seconds": 0.0,
                "predict_seconds": time.perf_counter() - start,
            },
        )
        if all("bin_probability" in prediction for prediction in predictions):
            draws = np.stack(
                [
                    prediction["bin_probability"].transpose(task.target_dim, BIN).values
                    for prediction in predictions
                ]
            )
            entropy, information = entropy_and_mutual_information(draws)
            dataset = dataset.assign_coords(
                {name: predictions[0][name] for name in (BIN, "bin_lower", "bin_upper")}
            )
            dataset["bin_probability"] = (
                (task.target_dim, BIN),
                draws.mean(0),
                predictions[0]["bin_probability"].attrs,
            )
            dataset["predictive_entropy"] = (
                task.target_dim,
                entropy,
                {"units": "nat", "long_name": "entropy of the mean bin probabilities"},
            )
            dataset["mutual_information"] = (
                task.target_dim,
                information,
                {
                    "units": "nat",
                    "long_name": "mutual information between bin and ensemble member (epistemic)",
                },
            )
            dataset = with_rain_probability(dataset)
        return dataset
