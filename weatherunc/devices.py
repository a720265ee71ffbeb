"""Device and precision choice for torch models: CUDA when present, else CPU.

Mixed precision (bfloat16 autocast) is used on CUDA by default; on the CPU it is off unless
asked for (``precision="bfloat16"``), which also lets the mixed-precision path be tested
without a GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["auto", "float32", "bfloat16", "float16"]


def choose_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given ("cpu", "cuda", "cuda:1"), else CUDA when available, else CPU."""
    if preferred:
        try:
            device = torch.device(preferred)
        except RuntimeError as error:
            raise ValueError(f"device={preferred!r}: expected cpu, cuda or cuda:N") from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={preferred!r} was asked for but CUDA is not available on this machine")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def autocast_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` and ``precision`` (None: full float32)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def autocast(device: torch.device, precision: Precision = "auto") -> contextlib.AbstractContextManager:
    """``torch.autocast`` for the chosen dtype, or a no-op context for float32."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_gradient_scaler(device: torch.device, precision: Precision = "auto") -> bool:
    """float16 on CUDA needs loss scaling; bfloat16 and float32 do not."""
    return device.type == "cuda" and autocast_dtype(device, precision) == torch.float16


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous number (so
    that Dask worker threads x torch threads stay within the cores without changing the caller)."""
    if count < 1:
        raise ValueError(f"torch_threads must be >= 1, got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
