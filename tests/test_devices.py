"""Device and precision choice; the mixed-precision path runs on the CPU with bfloat16."""

from __future__ import annotations

import pytest
import torch

from weatherunc.devices import autocast, autocast_dtype, choose_device, needs_gradient_scaler
from weatherunc.models.neural_process.config import NeuralProcessConfig
from weatherunc.models.neural_process.losses import neural_process_loss
from weatherunc.models.neural_process.model import NeuralProcess


def test_choose_device_follows_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        choose_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")
    assert choose_device("cuda:1") == torch.device("cuda:1")
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='tpu': expected cpu, cuda or cuda:N"):
        choose_device("tpu")


def test_precision_choices() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype(cuda) == torch.bfloat16 and autocast_dtype(cpu) is None
    assert autocast_dtype(cpu, "bfloat16") == torch.bfloat16 and autocast_dtype(cuda, "float32") is None
    assert (
        needs_gradient_scaler(cuda, "float16")
        and not needs_gradient_scaler(cuda, "auto")
        and not needs_gradient_scaler(cpu, "float16")
    )


def test_bfloat16_autocast_training_step_on_cpu() -> None:
    torch.manual_seed(0)
    model = NeuralProcess(
        NeuralProcessConfig(hidden=16, latent_dimension=4, heads=2, self_attention_layers=1)
    )
    inputs = torch.randn(2, 9, 2), torch.randn(2, 9, 1), torch.randn(2, 6, 2), torch.randn(2, 6, 1)
    with autocast(torch.device("cpu"), "bfloat16"):
        output = model(*inputs)
    assert output.mean.dtype == torch.bfloat16  # the linear layers ran in bfloat16
    loss = neural_process_loss(output, inputs[3][..., 0], torch.zeros(2, 6, dtype=torch.long))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(
        parameter.grad.dtype == torch.float32
        for parameter in model.parameters()
        if parameter.grad is not None
    )


def test_torch_threads_sets_and_restores_the_thread_count() -> None:
    import torch

    from weatherunc.devices import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads"):
        with torch_threads(0):
            pass
