"""The random draws of a neural process at prediction: from a generator of the prediction's own.

A prediction draws latents, attention weights (stochastic attention) and, with MC dropout, dropout
masks. Drawn from torch's global generator, two predictions running at once in two threads (Dask's
threaded scheduler) take each other's draws, and their results depend on the timing. Inside
:func:`drawing` every draw of this module comes from the generator given, in the calling thread
and context only (a :class:`contextvars.ContextVar`, per thread); outside it, from the global
generator, as training expects. Dropout has no generator argument in torch, hence
:class:`DrawnDropout`, which draws its mask here and which :func:`drawing` can switch on at
prediction (MC dropout, Gal & Ghahramani 2016) without putting the shared model in training mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class Draws:
    """Where the draws of the current prediction come from, and whether dropout is on."""

    generator: torch.Generator
    dropout: bool = False


_CURRENT: ContextVar[Draws | None] = ContextVar("weatherunc_neural_process_draws", default=None)


@contextmanager
def drawing(generator: torch.Generator, *, dropout: bool = False) -> Iterator[None]:
    """Within the block, in this thread, draw from ``generator``; ``dropout``: apply the
    :class:`DrawnDropout` layers even in evaluation mode (MC dropout)."""
    token = _CURRENT.set(Draws(generator, dropout))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _generator() -> torch.Generator | None:
    draws = _CURRENT.get()
    return None if draws is None else draws.generator


def standard_normal_like(tensor: torch.Tensor) -> torch.Tensor:
    """Standard normal draws shaped like ``tensor`` (the noise of ``Normal.rsample``)."""
    return torch.empty_like(tensor).normal_(generator=_generator())


def uniform_like(tensor: torch.Tensor) -> torch.Tensor:
    """Uniform draws on [0, 1) shaped like ``tensor`` (as ``torch.rand_like``)."""
    return torch.empty_like(tensor).uniform_(generator=_generator())


class DrawnDropout(nn.Dropout):
    """``nn.Dropout`` whose mask comes from :func:`drawing`'s generator when there is one, and which
    is also on in evaluation mode inside ``drawing(..., dropout=True)``. The same parameters and
    state as ``nn.Dropout``, so checkpoints load unchanged."""

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        draws = _CURRENT.get()
        active = self.training or (draws is not None and draws.dropout)
        if not active or self.p == 0.0:
            return values
        if draws is None:
            return functional.dropout(values, self.p, training=True, inplace=self.inplace)
        if self.p == 1.0:
            return values * 0.0
        keep = torch.empty_like(values).bernoulli_(1.0 - self.p, generator=draws.generator)
        return values * keep.div_(1.0 - self.p)
