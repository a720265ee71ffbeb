"""Deep ensembles by name: ``get_model(NAME, members=[...])`` is the mixture of the members'
checkpoints, and bad member lists are refused with the option named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_convnp_prior import TINY, _smooth_task
from weatherunc import conventions
from weatherunc.checkpoints import save_checkpoint
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.interpolator import ARCHITECTURE
from weatherunc.models.convnp.model import ConvNP
from weatherunc.models.registry import get_model, packaged_checkpoint


def _tiny_checkpoints(folder: Path, seeds: tuple[int, ...]) -> list[Path]:
    paths = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = ConvNP(ConvNPConfig(**TINY))
        path = folder / f"member-{seed}.safetensors"
        save_checkpoint(path, model.state_dict(), architecture=ARCHITECTURE, config=model.config.to_dict())
        paths.append(path)
    return paths


def test_convnp_members_predict_the_mixture_of_their_checkpoints(tmp_path: Path) -> None:
    paths = _tiny_checkpoints(tmp_path, (1, 2, 3))
    task = _smooth_task()
    singles = [get_model("convnp", checkpoint=path).predict(task) for path in paths]
    ensemble = get_model("convnp", members=paths).predict(task)
    means = np.stack([single[conventions.TRANSFORMED_MEAN].values for single in singles])
    latent = np.mean([single[conventions.LATENT_VARIANCE].values for single in singles], axis=0)
    assert ensemble.attrs["model"] == "convnp_ensemble" and ensemble.attrs["members"] == 3
    np.testing.assert_allclose(ensemble[conventions.TRANSFORMED_MEAN].values, means.mean(0), rtol=1e-10)
    np.testing.assert_allclose(
        ensemble[conventions.LATENT_VARIANCE].values, latent + means.var(0), rtol=1e-10, atol=1e-12
    )
    assert np.all(means.var(0) > 0), "members of different seeds should disagree"


def test_neural_process_members_by_name() -> None:
    members = [packaged_checkpoint("anp"), packaged_checkpoint("cnp")]
    ensemble = get_model("anp", members=members, name="pair")
    prediction = ensemble.predict(_smooth_task())
    assert prediction.attrs["model"] == "pair" and prediction.attrs["members"] == 2


def test_bad_member_lists_are_refused(tmp_path: Path) -> None:
    paths = _tiny_checkpoints(tmp_path, (1, 2))
    with pytest.raises(ValueError, match="members: a deep ensemble needs a list of at least 2"):
        get_model("convnp", members=paths[:1])
    with pytest.raises(ValueError, match="members: a deep ensemble needs a list"):
        get_model("anp", members=str(paths[0]))
    with pytest.raises(ValueError, match="members: give either checkpoint or members"):
        get_model("convnp", checkpoint=paths[0], members=paths)
    with pytest.raises(ValueError, match="members: a deep ensemble cannot be combined with swag"):
        get_model("convnp", members=paths, swag=tmp_path / "none.safetensors")
