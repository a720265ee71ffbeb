"""The learning-rate schedule of the training loops."""

from __future__ import annotations

import math

from pydantic import BaseModel


def learning_rate(config: BaseModel, step: int) -> float:
    """Linear warm-up over 5 % of ``config.steps``, then cosine decay to a tenth of
    ``config.learning_rate`` (Loshchilov & Hutter 2017, "SGDR", without restarts)."""
    warmup = max(1, config.steps // 20)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, config.steps - warmup))
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
