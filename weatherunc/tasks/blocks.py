"""Square blocks hidden in a grid: where they are placed and which pixels they cover.

Every sampler of masked blocks places its blocks with :func:`place_blocks`: the test tasks of
the benchmark and of self-calibration (:func:`weatherunc.tasks.masked_blocks`), the withheld
targets of batch jobs (:func:`weatherunc.pipelines.stages.target_mask`) and the training tasks of
the neural processes (:mod:`weatherunc.training.sampling`, :mod:`weatherunc.training.grid_sampling`).
Their rules differ only in the fields of :class:`BlockRules` and in how a block's side is chosen
(a fixed number of pixels, or a :class:`SideDraw` in pixels or kilometres).

The random numbers are drawn in one fixed order, so a seeded sampler gives the same blocks on
every run: per block, its side (a :class:`SideDraw` draws one number), then for each attempt the
top row and the left column (one integer each, in that order). Nothing else is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    """A square of ``size`` x ``size`` pixels whose first pixel is (``top``, ``left``)."""

    top: int
    left: int
    size: int

    def window(self, margin: int = 0) -> tuple[slice, slice]:
        """The (row, column) slices of the block grown by ``margin`` pixels on every side (cut at
        the grid's first row and column; numpy slicing cuts at the last)."""
        return (
            slice(max(0, self.top - margin), self.top + self.size + margin),
            slice(max(0, self.left - margin), self.left + self.size + margin),
        )


@dataclass(frozen=True)
class SideDraw:
    """How the side of each block [pixels] is drawn, one random number per block.

    ``pixel_km=None``: a uniform integer in ``bounds`` (pixels, both ends included); otherwise a
    uniform real in ``bounds`` (km) divided by ``pixel_km`` and rounded. The side is then cut to
    at most ``largest`` and, where ``smallest`` is given, raised to at least ``smallest``.
    """

    bounds: tuple[float, float]
    largest: int
    smallest: int | None = None
    pixel_km: float | None = None

    def draw(self, rng: np.random.Generator) -> int:
        """One side [pixels]."""
        if self.pixel_km is None:
            side = int(min(rng.integers(int(self.bounds[0]), int(self.bounds[1]) + 1), self.largest))
        else:
            side = min(int(round(rng.uniform(*self.bounds) / self.pixel_km)), self.largest)
        return side if self.smallest is None else max(self.smallest, side)


@dataclass(frozen=True)
class BlockRules:
    """Where a block may go, and what :func:`place_blocks` does when none fits.

    - ``attempts``: positions drawn at most, shared by all blocks (``attempts_per_block=False``:
      placing stops, with fewer blocks, once they are spent) or for each block
      (``attempts_per_block=True``: a block that fits nowhere goes where its last attempt put it);
    - ``touch_far_edge``: whether a block may reach the last row and column (its top row is drawn
      from ``0 .. ny - size``, else from ``0 .. ny - size - 1``; likewise the left column);
    - ``spacing``: ``None`` lets blocks overlap; ``k`` keeps at least ``k`` pixels between
      blocks (``0``: they may touch, not overlap);
    - ``min_observed_fraction``: the least fraction of a block's pixels observed;
    - ``min_wet_fraction``: the least fraction of wet pixels among those observed (of every pixel
      where nothing tells which are observed); a block without a pixel to count fails it. ``0``
      checks nothing.
    """

    attempts: int
    attempts_per_block: bool = False
    touch_far_edge: bool = True
    spacing: int | None = None
    min_observed_fraction: float = 0.0
    min_wet_fraction: float = 0.0


def cover(shape: tuple[int, int], blocks: list[Block], margin: int = 0) -> np.ndarray:
    """Pixels ``[ny, nx]`` (bool) inside any of ``blocks`` grown by ``margin`` pixels."""
    covered = np.zeros(shape, dtype=bool)
    for block in blocks:
        covered[block.window(margin)] = True
    return covered


def _fits(
    block: Block,
    placed: np.ndarray | None,
    rules: BlockRules,
    observed: np.ndarray | None,
    wet: np.ndarray | None,
) -> bool:
    """Whether ``block`` keeps the rules, given the pixels ``placed`` ``[ny, nx]`` of earlier blocks."""
    window = block.window()
    seen = None if observed is None else observed[window]
    if seen is not None and not seen.mean() >= rules.min_observed_fraction:
        return False
    if placed is not None and placed[block.window(rules.spacing)].any():
        return False
    if rules.min_wet_fraction > 0:
        if wet is None:
            raise ValueError("min_wet_fraction > 0 needs the wet pixels")
        counted = wet[window] if seen is None else wet[window][seen]
        if not counted.mean() >= rules.min_wet_fraction:
            return False
    return True


def place_blocks(
    shape: tuple[int, int],
    count: int,
    side: int | SideDraw,
    rules: BlockRules,
    rng: np.random.Generator,
    *,
    observed: np.ndarray | None = None,
    wet: np.ndarray | None = None,
) -> list[Block]:
    """Up to ``count`` square blocks in a grid of ``shape`` (ny, nx), in the order placed.

    ``side``: every block's side [pixels], or how to draw it per block. ``observed``, ``wet``
    ``[ny, nx]`` (bool): the observed pixels (``None``: every pixel counts) and the wet ones, for
    the fractions of ``rules``. Each attempt draws a block's top row, then its left column,
    uniformly where the block fits in the grid, and keeps it where it keeps ``rules``. Fewer than
    ``count`` blocks come back only where the shared attempts ran out.
    """
    extra = 1 if rules.touch_far_edge else 0
    placed_pixels = None if rules.spacing is None else np.zeros(shape, dtype=bool)
    blocks: list[Block] = []
    attempts_left = rules.attempts
    for _ in range(count):
        size = side.draw(rng) if isinstance(side, SideDraw) else int(side)
        if rules.attempts_per_block:
            attempts_left = rules.attempts
        chosen: Block | None = None
        while attempts_left > 0:
            attempts_left -= 1
            top = int(rng.integers(0, shape[0] - size + extra))
            left = int(rng.integers(0, shape[1] - size + extra))
            candidate = Block(top, left, size)
            if _fits(candidate, placed_pixels, rules, observed, wet):
                chosen = candidate
                break
        if chosen is None:
            if not rules.attempts_per_block or rules.attempts < 1:
                break
            chosen = candidate  # no attempt fitted: the last one's position
        blocks.append(chosen)
        if placed_pixels is not None:
            placed_pixels[chosen.window()] = True
    return blocks
