"""Colour scales fit for precipitation: dry distinct from light rain, log-like steps, NaN blank."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.colors as mcolors
import numpy as np
from matplotlib import colormaps

#: Rate levels [mm/h]: the first class [0, 0.1) is "dry".
RATE_LEVELS = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
#: Standard deviation levels [mm/h].
SPREAD_LEVELS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
PROBABILITY_LEVELS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
#: Standard deviation levels of the transformed rate (e.g. log(rate + 1), dimensionless).
TRANSFORMED_SPREAD_LEVELS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
DRY_COLOUR = "#e6e6e6"


@dataclass(frozen=True)
class ColourScale:
    """A discrete colour map and its norm; ``bad`` (NaN) is fully transparent."""

    colormap: mcolors.Colormap
    norm: mcolors.BoundaryNorm
    levels: tuple[float, ...]
    extend: str


def _scale(levels: tuple[float, ...], palette: str, first: str | None, extend: str) -> ColourScale:
    classes = len(levels) - 1 + (1 if extend == "max" else 0)
    colours = list(colormaps[palette](np.linspace(0.15, 1.0, classes - (1 if first else 0))))
    if first:
        colours = [mcolors.to_rgba(first), *colours]
    colormap = mcolors.ListedColormap(colours[: len(levels) - 1]).with_extremes(
        bad=(0.0, 0.0, 0.0, 0.0), over=colours[-1] if extend == "max" else None
    )
    return ColourScale(colormap, mcolors.BoundaryNorm(levels, colormap.N, extend="neither"), levels, extend)


def rate_scale() -> ColourScale:
    """Rate [mm/h]: grey below 0.1 (dry), then blue-green-yellow-red steps."""
    return _scale(RATE_LEVELS, "turbo", DRY_COLOUR, "max")


def spread_scale() -> ColourScale:
    """Standard deviation [mm/h]: log-like steps on a sequential palette."""
    return _scale(SPREAD_LEVELS, "magma_r", None, "max")


def transformed_spread_scale() -> ColourScale:
    """Standard deviation of the transformed rate: log-like steps on a sequential palette."""
    return _scale(TRANSFORMED_SPREAD_LEVELS, "magma_r", None, "max")


def probability_scale() -> ColourScale:
    """Probability [0, 1] in tenths."""
    return _scale(PROBABILITY_LEVELS, "PuBuGn", None, "neither")
