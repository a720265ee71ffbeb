"""A neural process's random draws at prediction come from a generator of the prediction's own:
predictions made at once in several threads equal the same predictions made one after another."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_neural_process import TINY
from tests.test_stochastic_attention import _save
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.model import NeuralProcess
from weatherunc.models.neural_process.randomness import (
    DrawnDropout,
    drawing,
    standard_normal_like,
    uniform_like,
)
from weatherunc.models.registry import get_model
from weatherunc.tasks import Task


def _tasks(count: int) -> list[Task]:
    tasks = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        points = rng.uniform(0, 60, size=(160, 2))
        values = rng.gamma(0.8, 2.0, size=160)
        tasks.append(Task(points[:100], values[:100], points[100:], values[100:]))
    return tasks


@pytest.mark.parametrize(
    "options",
    [
        {"samples": 4},
        {"samples": 3, "mc_dropout": True},
        {"samples": 2, "stochastic_attention_samples": 2},
    ],
    ids=["latent", "mc_dropout", "stochastic_attention"],
)
def test_predictions_in_threads_equal_those_made_one_after_another(tmp_path: Path, options: dict) -> None:
    torch.manual_seed(3)
    config = NeuralProcessConfig(
        **TINY, dropout=0.3, stochastic_attention="stochastic_attention_samples" in options
    )
    checkpoint = _save(NeuralProcess(config), tmp_path / "model.safetensors")
    model = get_model("anp", checkpoint=checkpoint, **options)
    tasks = _tasks(4)
    alone = [model.predict(task) for task in tasks]
    assert np.all(alone[0].latent_variance.values > 0)  # the draws differ, so a mix-up would show
    together: list = [None] * len(tasks)

    def predict(number: int) -> None:
        together[number] = model.predict(tasks[number])

    for _ in range(2):
        threads = [threading.Thread(target=predict, args=(number,)) for number in range(len(tasks))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for one, other in zip(alone, together):
            np.testing.assert_array_equal(other.transformed_mean.values, one.transformed_mean.values)
            np.testing.assert_array_equal(other.latent_variance.values, one.latent_variance.values)
            np.testing.assert_array_equal(other.bin_probability.values, one.bin_probability.values)


def test_drawing_takes_the_generators_stream_and_leaves_the_global_one_alone() -> None:
    shape = torch.zeros(5, 3, dtype=torch.float64)
    torch.manual_seed(11)
    global_normal = torch.randn(5, 3, dtype=torch.float64)
    global_uniform = torch.rand(5, 3, dtype=torch.float64)
    torch.manual_seed(99)
    untouched = torch.get_rng_state()
    with drawing(torch.Generator().manual_seed(11)):
        normal, uniform = standard_normal_like(shape), uniform_like(shape)
    assert torch.equal(torch.get_rng_state(), untouched)
    # torch's own draws from the same seed: the generator's stream, not the global one's.
    torch.testing.assert_close(normal, global_normal, rtol=0, atol=0)
    torch.testing.assert_close(uniform, global_uniform, rtol=0, atol=0)
    torch.manual_seed(11)
    torch.testing.assert_close(standard_normal_like(shape), global_normal, rtol=0, atol=0)  # outside: global


def test_drawn_dropout_is_off_in_evaluation_unless_drawing_asks_for_it() -> None:
    layer = DrawnDropout(0.5).eval()
    values = torch.ones(4, 1000)
    assert torch.equal(layer(values), values)
    with drawing(torch.Generator().manual_seed(2), dropout=True):
        dropped = layer(values)
    with drawing(torch.Generator().manual_seed(2), dropout=True):
        again = layer(values)
    with drawing(torch.Generator().manual_seed(2)):
        assert torch.equal(layer(values), values)  # drawing without dropout: evaluation stays exact
    assert torch.equal(dropped, again)  # the mask comes from the generator
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert abs(float((dropped == 0).float().mean()) - 0.5) < 0.03  # 4,000 draws: 6 standard errors
    # Training mode, outside drawing: torch's dropout on the global generator, as before.
    torch.manual_seed(5)
    expected = torch.nn.functional.dropout(values, 0.5, training=True)
    torch.manual_seed(5)
    torch.testing.assert_close(layer.train()(values), expected, rtol=0, atol=0)
