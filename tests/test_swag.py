"""SWAG: the collected moments, the weight samples' distribution, the file and its checks, and a
ConvNP whose weight samples predict as an ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.test_convnp_prior import TINY, _smooth_task
from tests.test_convnp_training import CONFIG
from weatherunc import conventions
from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.cli import app
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.interpolator import ARCHITECTURE, ConvNPInterpolator
from weatherunc.models.convnp.model import ConvNP
from weatherunc.models.ensemble import EnsembleInterpolator
from weatherunc.models.registry import get_model
from weatherunc.models.swag import (
    SwagCollector,
    load_swag,
    sample_weights,
    save_swag,
    selected_parameters,
    swag_members,
)
from weatherunc.training.convnp_config import ConvNPTrainingConfig
from weatherunc.training.swag import collect_swag


class _Vector(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(size))
        self.other = torch.nn.Parameter(torch.zeros(2, 2))


def _moments(rank: int = 3):
    model = _Vector(4)
    collector = SwagCollector(model, ["weight"], rank)
    vectors = [
        torch.tensor([1.0, 2.0, 0.0, -1.0]),
        torch.tensor([3.0, 2.0, 1.0, 1.0]),
        torch.tensor([2.0, 5.0, -1.0, 0.0]),
    ]
    for vector in vectors:
        model.weight.data = vector.clone()
        collector.collect(model)
    return collector.moments(), torch.stack(vectors).double()


def test_collected_moments_are_running_means_and_last_deviations() -> None:
    moments, vectors = _moments()
    torch.testing.assert_close(moments.mean.double(), vectors.mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(moments.square_mean.double(), (vectors**2).mean(0), rtol=1e-6, atol=1e-6)
    # each deviation is taken from the running mean at its collection
    expected = [vectors[0] - vectors[0], vectors[1] - vectors[:2].mean(0), vectors[2] - vectors.mean(0)]
    torch.testing.assert_close(moments.deviations.double(), torch.stack(expected), rtol=1e-6, atol=1e-6)
    assert moments.count == 3 and moments.rank == 3
    with pytest.raises(ValueError, match="at least 2 collected"):
        SwagCollector(_Vector(4), ["weight"], 3).moments()
    with pytest.raises(ValueError, match="no parameter of the model starts with"):
        selected_parameters(_Vector(4), ("decoder.",))


def test_weight_samples_have_the_swag_mean_and_covariance() -> None:
    moments, _ = _moments()
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_weights(moments, generator)["weight"] for _ in range(40_000)]).double()
    diagonal = (moments.square_mean - moments.mean**2).clamp_min(0).double()
    deviations = moments.deviations.double()
    covariance = torch.diag(diagonal) / 2 + deviations.T @ deviations / (2 * (moments.rank - 1))
    torch.testing.assert_close(draws.mean(0), moments.mean.double(), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), covariance, atol=0.05, rtol=0.05)
    assert torch.equal(sample_weights(moments, generator, scale=0.0)["weight"], moments.mean)


def test_swag_file_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    moments, _ = _moments()
    path = tmp_path / "swag.safetensors"
    sidecar = save_swag(path, moments, {"note": "test"})
    loaded, values = load_swag(path)
    assert loaded.names == ["weight"] and values["metadata"]["note"] == "test"
    torch.testing.assert_close(loaded.deviations, moments.deviations)
    original = json.loads(sidecar.read_text())
    for label, change in {
        "huge": {"shapes": [[10**9]]},
        "rank": {"rank": 10**6},
        "shapes": {"shapes": [[-4]]},
        "names": {"names": "weight"},
    }.items():
        sidecar.write_text(json.dumps({**original, "config": {**original["config"], **change}}))
        with pytest.raises(CheckpointError):
            load_swag(path)
            pytest.fail(f"the {label} sidecar was accepted")


def test_swag_members_predict_as_an_ensemble_with_epistemic_variance() -> None:
    base = ConvNPInterpolator(model=ConvNP(ConvNPConfig(**TINY)).eval())
    names = selected_parameters(base.model, ("decoder.",))
    collector = SwagCollector(base.model, names, 4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        for name, parameter in base.model.named_parameters():
            if name in names:
                parameter.data += 0.05 * torch.randn(parameter.shape, generator=generator)
        collector.collect(base.model)
    moments = collector.moments()
    task = _smooth_task()
    members = swag_members(base, moments, 3)
    assert [member.name for member in members] == ["convnp-swag0", "convnp-swag1", "convnp-swag2"]
    prediction = EnsembleInterpolator(members).predict(task)
    assert np.all(prediction[conventions.LATENT_VARIANCE].values > 0)
    assert np.all(prediction[conventions.MUTUAL_INFORMATION].values >= 0)
    still = EnsembleInterpolator(swag_members(base, moments, 2, scale=0.0)).predict(task)
    np.testing.assert_allclose(still[conventions.LATENT_VARIANCE].values, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="weight_samples must be at least 2"):
        swag_members(base, moments, 1)
    other = ConvNPInterpolator(model=ConvNP(ConvNPConfig(**{**TINY, "decoder_hidden": 12})).eval())
    with pytest.raises(ValueError, match="is not in the model"):
        swag_members(other, moments, 2)


def _saved_tiny_convnp(path: Path) -> Path:
    """A tiny ConvNP with fresh weights, saved as a checkpoint at ``path``."""
    model = ConvNP(ConvNPConfig(**TINY))
    save_checkpoint(path, model.state_dict(), architecture=ARCHITECTURE, config=model.config.to_dict())
    return path


def test_collect_swag_on_the_embedded_sample_and_use_it_by_name(tmp_path: Path) -> None:
    checkpoint = _saved_tiny_convnp(tmp_path / "tiny.safetensors")
    config = ConvNPTrainingConfig(**{**CONFIG, "output_dir": tmp_path / "run"})
    output = tmp_path / "tiny.swag.safetensors"
    collect_swag(config, checkpoint, output, steps=6, every=2, burn_in=1, rank=2, progress=False)
    moments, sidecar = load_swag(output)
    assert moments.count == 2 and sidecar["metadata"]["steps"] == 6
    assert all(name.startswith(("decoder.", "unet.up.0.", "unet.lift.0.")) for name in moments.names)
    ensemble = get_model("convnp", checkpoint=checkpoint, swag=output, weight_samples=3)
    prediction = ensemble.predict(_smooth_task())
    assert prediction.attrs["members"] == 3 and np.all(prediction[conventions.LATENT_VARIANCE].values > 0)
    result = CliRunner().invoke(app, ["swag", str(tmp_path / "none.yaml"), str(checkpoint), str(output)])
    assert result.exit_code != 0 and "none.yaml" in result.output
    wider = ConvNPTrainingConfig(
        **{**CONFIG, "model": {**CONFIG["model"], "decoder_hidden": 16}, "output_dir": tmp_path / "run"}
    )
    with pytest.raises(
        ValueError,
        match=r"is not a model of this training config: decoder_hidden \(checkpoint 8, config 16\)",
    ):
        collect_swag(
            wider, checkpoint, tmp_path / "none.safetensors", steps=3, every=1, burn_in=1, progress=False
        )


def test_collect_swag_of_an_anp_and_use_it_by_name(tmp_path: Path) -> None:
    """The ANP's decoder: moments collected by the API and by ``weatherunc swag`` with an ANP training
    config, then weight samples that differ, predicting as an ensemble named ``anp+swag``."""
    import yaml

    from tests.test_training import CONFIG as ANP_CONFIG
    from weatherunc.models.neural_process.interpolator import ARCHITECTURE as ANP_ARCHITECTURE
    from weatherunc.models.neural_process.model import NeuralProcess
    from weatherunc.training.config import TrainingConfig

    torch.manual_seed(0)
    model = NeuralProcess(TrainingConfig(**ANP_CONFIG).model.to_config(0.0, 1.0))
    checkpoint = tmp_path / "anp.safetensors"
    save_checkpoint(
        checkpoint, model.state_dict(), architecture=ANP_ARCHITECTURE, config=model.config.to_dict()
    )
    config = TrainingConfig(**{**ANP_CONFIG, "output_dir": tmp_path / "run"})
    output = tmp_path / "anp.swag.safetensors"
    torch.manual_seed(1)
    collect_swag(config, checkpoint, output, steps=6, every=2, burn_in=1, rank=2, progress=False)
    moments, sidecar = load_swag(output)
    assert moments.count == 2 and sidecar["metadata"]["prefixes"] == ["decoder."]
    torch.manual_seed(2)  # the global stream does not reach the fine-tune's draws
    again = tmp_path / "again.safetensors"
    collect_swag(config, checkpoint, again, steps=6, every=2, burn_in=1, rank=2, progress=False)
    assert torch.equal(load_swag(again)[0].mean, moments.mean)
    assert moments.names and all(name.startswith("decoder.") for name in moments.names)
    assert float((moments.square_mean - moments.mean**2).max()) > 0  # the collected weights moved
    ensemble = get_model("anp", checkpoint=checkpoint, swag=output, weight_samples=3)
    assert ensemble.name == "anp+swag" and len(ensemble.members) == 3
    first, second = (member.model.state_dict()[moments.names[0]] for member in ensemble.members[:2])
    assert not torch.equal(first, second)
    prediction = ensemble.predict(_smooth_task())
    assert prediction.attrs["members"] == 3 and np.all(prediction[conventions.LATENT_VARIANCE].values > 0)
    wider = TrainingConfig(**{**ANP_CONFIG, "model": {**ANP_CONFIG["model"], "hidden": 32}})
    with pytest.raises(
        ValueError, match=r"is not a model of this training config: hidden \(checkpoint 16, config 32\)"
    ):
        collect_swag(
            wider, checkpoint, tmp_path / "none.safetensors", steps=3, every=1, burn_in=1, progress=False
        )
    with pytest.raises(ValueError, match="--every 4, --burn-in 50, --steps 3"):
        collect_swag(config, checkpoint, tmp_path / "none.safetensors", steps=3, every=4, progress=False)
    with pytest.raises(ValueError, match="cannot be combined with members or stochastic_attention_samples"):
        get_model("anp", checkpoint=checkpoint, swag=output, stochastic_attention_samples=2)
    path = tmp_path / "anp.yaml"
    path.write_text(yaml.safe_dump({**ANP_CONFIG, "output_dir": str(tmp_path / "run")}))
    command = ["swag", str(path), str(checkpoint), str(tmp_path / "cli.safetensors")]
    result = CliRunner().invoke(
        app, [*command, "--steps", "5", "--every", "2", "--burn-in", "1", "--rank", "2"]
    )
    assert result.exit_code == 0, result.output
    assert load_swag(tmp_path / "cli.safetensors")[0].count == 2
    refused = CliRunner().invoke(app, [*command, "--output-dir", str(tmp_path / "cache")])
    assert refused.exit_code != 0 and "--output-dir" in refused.output


def test_a_posterior_is_refused_for_other_weights_and_is_part_of_the_model_s_checksum(tmp_path: Path) -> None:
    """SWAG moments record the checkpoint they were collected from: another checkpoint is refused;
    the ensemble's checksum covers the moments, so that moments changed in place change it;
    ``weight_samples`` without a posterior is refused."""
    checkpoint = _saved_tiny_convnp(tmp_path / "tiny.safetensors")
    other = _saved_tiny_convnp(tmp_path / "other.safetensors")  # other weights
    config = ConvNPTrainingConfig(**{**CONFIG, "output_dir": tmp_path / "run"})
    output = tmp_path / "tiny.swag.safetensors"
    collect_swag(config, checkpoint, output, steps=4, every=1, burn_in=1, rank=2, progress=False)
    first = get_model("convnp", checkpoint=checkpoint, swag=output, weight_samples=2)
    with pytest.raises(ValueError, match="was fitted to the checkpoint with sha256"):
        get_model("convnp", checkpoint=other, swag=output, weight_samples=2)
    collect_swag(config, checkpoint, output, steps=4, every=1, burn_in=2, rank=2, progress=False)
    second = get_model("convnp", checkpoint=checkpoint, swag=output, weight_samples=2)
    assert first.checkpoint_sha256 and first.checkpoint_sha256 != second.checkpoint_sha256
    assert first.posterior_sha256 != second.posterior_sha256
    prediction = second.predict(_smooth_task())
    assert prediction.attrs["checkpoint_sha256"] == second.checkpoint_sha256
    assert prediction.attrs["posterior_sha256"] == load_swag(output)[1]["sha256"]
    with pytest.raises(ValueError, match="weight_samples=4 applies with swag= or bayes_by_backprop= only"):
        get_model("convnp", checkpoint=checkpoint, weight_samples=4)
    with pytest.raises(ValueError, match="weight_samples=3 applies with swag= or bayes_by_backprop= only"):
        get_model("convnp", members=[checkpoint, checkpoint], weight_samples=3)
    with pytest.raises(ValueError, match="weight_samples=3 applies with swag= or bayes_by_backprop= only"):
        get_model("anp", members=[checkpoint, checkpoint], weight_samples=3)


def test_a_job_refuses_its_output_once_the_posterior_changed_in_place(tmp_path: Path) -> None:
    """A batch job's fingerprint holds the ensemble's checksum, posterior included: moments
    rewritten at the same path make the finished store another job's."""
    from tests.test_jobs import JOB
    from weatherunc.pipelines.job_config import JobConfig
    from weatherunc.pipelines.run_job import JobStateError, run_job

    checkpoint = _saved_tiny_convnp(tmp_path / "tiny.safetensors")
    config = ConvNPTrainingConfig(**{**CONFIG, "output_dir": tmp_path / "run"})
    moments = tmp_path / "tiny.swag.safetensors"
    collect_swag(config, checkpoint, moments, steps=4, every=1, burn_in=1, rank=2, progress=False)
    options = {"checkpoint": str(checkpoint), "swag": str(moments), "weight_samples": 2}
    job = JobConfig(
        **{
            **JOB,
            "name": "swag_job",
            "frames": {**JOB["frames"], "limit": 1},
            "model": {"name": "convnp", "options": options},
            "output_dir": str(tmp_path / "out"),
        }
    )
    assert run_job(job, scheduler="synchronous", progress=False).tiles_written > 0
    collect_swag(config, checkpoint, moments, steps=4, every=1, burn_in=2, rank=2, progress=False)
    with pytest.raises(JobStateError, match="holds the output of another job config") as caught:
        run_job(job, scheduler="synchronous", progress=False)
    assert "model_checkpoint_sha256" in str(caught.value)
