"""The convolutional neural process: set convolution, U-Net, decoder, loss, interpolator and
checkpoints (no shared data needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from weatherunc.checkpoints import CheckpointError, save_checkpoint
from weatherunc.metrics.kernels import rate_bin_index
from weatherunc.models.convnp.config import ConvNPConfig
from weatherunc.models.convnp.grids import context_grids, standardise
from weatherunc.models.convnp.interpolator import ARCHITECTURE, ConvNPInterpolator, load_convnp, task_grid
from weatherunc.models.convnp.model import (
    ConvNP,
    ConvNPOutput,
    SetConvolution,
    censored_loss,
    gaussian_kernels,
    read_at,
)
from weatherunc.tasks import Task

TINY = ConvNPConfig(channels=(8, 8, 8), decoder_hidden=8, set_conv_lengthscales_km=(1.0, 2.0))


def _task(n_context: int = 150, n_target: int = 40, seed: int = 3) -> Task:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 50, size=(n_context + n_target, 2))
    field = np.maximum(np.sin(points[:, 0] / 7.0) + np.cos(points[:, 1] / 11.0), 0.0) * 3.0
    return Task(
        points[:n_context],
        field[:n_context],
        points[n_context:],
        field[n_context:],
        target_coords={"y": points[n_context:, 1], "x": points[n_context:, 0]},
    )


def test_config_round_trips_and_refuses_bad_values() -> None:
    assert ConvNPConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    for bad in (
        {"grid_km": 0.0},
        {"channels": ()},
        {"bin_edges": (0.1, 1.0)},
        {"set_conv_lengthscales_km": (-1.0,)},
    ):
        with pytest.raises(ValueError):
            ConvNPConfig(**bad)
    with pytest.raises(TypeError):
        ConvNPConfig.from_dict({**TINY.to_dict(), "hidden": 10})
    assert TINY.dry_bound == pytest.approx((math.log(1.0) - TINY.value_centre) / TINY.value_scale)


def test_gaussian_kernels_are_normalised_gaussians() -> None:
    kernels = gaussian_kernels([1.0, 2.5])
    assert kernels.shape == (2, 2 * 8 + 1)
    torch.testing.assert_close(kernels.sum(1), torch.ones(2))
    offsets = torch.arange(-8, 9, dtype=torch.float32)
    ratio = kernels[1] / kernels[1, 8]
    torch.testing.assert_close(ratio, torch.exp(-0.5 * (offsets / 2.5) ** 2))


def test_set_convolution_is_a_normalised_convolution() -> None:
    encoder = SetConvolution(TINY)
    observed = torch.zeros(1, 1, 40, 40)
    observed[..., ::2, ::3] = 1.0
    values = torch.full((1, 1, 40, 40), 1.7) * observed
    channels = encoder(observed, values)
    assert channels.shape == (1, encoder.channels, 40, 40)
    inner = (Ellipsis, slice(10, 30), slice(10, 30))
    # a constant field is reproduced exactly wherever any context is within reach
    torch.testing.assert_close(
        channels[:, 4:][inner], torch.full_like(channels[:, 4:][inner], 1.7), atol=5e-4, rtol=0
    )
    # density inside a regularly observed region is the observed fraction (1 of 6 cells)
    torch.testing.assert_close(channels[:, 3][inner].mean(), torch.tensor(1 / 6), atol=5e-3, rtol=0)
    empty = encoder(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    assert torch.count_nonzero(empty) == 0


def test_read_at_is_exact_at_cells_and_linear_between() -> None:
    rows, columns = torch.meshgrid(torch.arange(6.0), torch.arange(9.0), indexing="ij")
    features = torch.stack([2.0 * rows + 0.5 * columns, rows * 0 + 3.0])[None]
    positions = torch.tensor([[[0.0, 0.0], [5.0, 8.0], [2.5, 3.25], [1.0, 7.0]]])
    read = read_at(features, positions)
    expected = 2.0 * positions[0, :, 0] + 0.5 * positions[0, :, 1]
    torch.testing.assert_close(read[0, :, 0], expected)
    torch.testing.assert_close(read[0, :, 1], torch.full((4,), 3.0))


def test_network_is_translation_equivariant_and_takes_any_size() -> None:
    torch.manual_seed(0)
    model = ConvNP(TINY).eval()
    observed = (torch.rand(1, 1, 64, 64) < 0.3).float()
    values = torch.randn(1, 1, 64, 64) * observed
    with torch.no_grad():
        features = model.features(observed, values)
        shifted = model.features(torch.roll(observed, (8, 4), (2, 3)), torch.roll(values, (8, 4), (2, 3)))
        odd = model.features(observed[..., :37, :51], values[..., :37, :51])
    assert odd.shape[-2:] == (37, 51)
    # away from the edges a shift of the contexts by a multiple of the pooling shifts the features
    torch.testing.assert_close(
        shifted[..., 24:40, 24:40],
        torch.roll(features, (8, 4), (2, 3))[..., 24:40, 24:40],
        atol=1e-5,
        rtol=1e-4,
    )


def test_censored_loss_matches_the_tobit_likelihood() -> None:
    mean = torch.tensor([[0.2, -0.4, 1.0]])
    std = torch.tensor([[0.5, 1.5, 0.8]])
    logits = torch.zeros(1, 3, 4)
    output = ConvNPOutput(mean=mean, std=std, logits=logits)
    bound = -0.3
    values = torch.tensor([[bound, 0.9, 2.0]])
    bins = torch.tensor([[0, 1, 3]])
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    losses = censored_loss(output, values, bins, weights, dry_bound=bound, bin_weight=2.0)
    dry = -stats.norm.logcdf((bound - 0.2) / 0.5)
    wet = -stats.norm.logpdf(0.9, -0.4, 1.5)
    assert losses["nll"].item() == pytest.approx((dry + wet) / 2, rel=1e-5)
    assert losses["cross_entropy"].item() == pytest.approx(math.log(4), rel=1e-5)
    assert losses["loss"].item() == pytest.approx((dry + wet) / 2 + 2 * math.log(4), rel=1e-5)


def test_context_grids_average_the_contexts_of_a_cell() -> None:
    config = ConvNPConfig(value_centre=0.5, value_scale=2.0)
    observed, values = context_grids(
        config, np.array([0, 0, 2]), np.array([1, 1, 3]), np.array([0.0, 3.0, 1.0]), (3, 4)
    )
    assert observed.sum() == 2 and observed[0, 1] == 1 and observed[2, 3] == 1
    assert values[0, 1] == pytest.approx(np.mean(standardise(config, np.array([0.0, 3.0]))))
    assert values[2, 3] == pytest.approx(float(standardise(config, np.array(1.0))))
    np.testing.assert_array_equal(
        rate_bin_index(np.array([0.0, 0.1, 0.15, 60.0]), config.bin_edges), [0, 1, 1, 9]
    )


def test_task_grid_places_contexts_and_targets_by_their_coordinates() -> None:
    task = Task(
        np.array([[10.0, 20.0], [12.0, 21.0]]),
        np.array([1.0, 2.0]),
        np.array([[11.5, 20.5]]),
        np.array([0.0]),
    )
    grid = task_grid(ConvNPConfig(grid_km=0.5), task, margin_cells=4)
    np.testing.assert_allclose(grid.origin, [8.0, 18.0])
    assert grid.observed[4, 4] == 1 and grid.observed[6, 8] == 1 and grid.observed.sum() == 2
    np.testing.assert_allclose(grid.positions, [[5.0, 7.0]])


def test_interpolator_is_the_same_tiled_and_whole() -> None:
    torch.manual_seed(1)
    model = ConvNP(TINY)
    task = _task()
    whole = ConvNPInterpolator(model).predict(task)
    tiled = ConvNPInterpolator(model, tile_cells=16, halo_cells=64).predict(task)
    np.testing.assert_allclose(tiled.transformed_mean.values, whole.transformed_mean.values, atol=1e-6)
    np.testing.assert_allclose(tiled.bin_probability.values, whole.bin_probability.values, atol=1e-6)
    np.testing.assert_allclose(whole.bin_probability.sum("bin").values, 1.0)
    assert np.all(whole.latent_variance.values == 0) and np.all(whole.noise_variance.values > 0)
    with pytest.raises(ValueError, match="tile_cells"):
        ConvNPInterpolator(model, tile_cells=0).predict(task)


def test_checkpoint_round_trips_and_tampering_is_refused_before_allocating(tmp_path) -> None:
    torch.manual_seed(2)
    model = ConvNP(TINY)
    path = tmp_path / "convnp.safetensors"
    save_checkpoint(path, model.state_dict(), architecture=ARCHITECTURE, config=TINY.to_dict())
    loaded, sidecar = load_convnp(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    sidecar_file = path.with_suffix(".json")
    original = json.loads(sidecar_file.read_text())
    cases = {
        "unknown key": {**original, "config": {**original["config"], "hidden": 8}},
        "no config": {key: value for key, value in original.items() if key != "config"},
        "huge": {**original, "config": {**original["config"], "channels": [10**7, 8, 8]}},
        "other width": {**original, "config": {**original["config"], "channels": [16, 8, 8]}},
    }
    for label, values in cases.items():
        sidecar_file.write_text(json.dumps(values))
        with pytest.raises(CheckpointError):
            load_convnp(path)
            pytest.fail(f"the {label} sidecar was accepted")
    sidecar_file.write_text(json.dumps(original))
    load_convnp(path)
