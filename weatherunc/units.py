"""Conversion of native precipitation quantities to a rate in mm/h.

Accumulations are divided by their period; radar reflectivity is converted with a
stated Z-R power law ``Z = a R^b`` (Marshall & Palmer 1948, J. Meteor. 5, 165-166;
operational coefficients per provider are declared in the catalog entry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weatherunc import conventions


@dataclass(frozen=True)
class ZRRelation:
    """Power law ``Z = a * R**b`` between reflectivity factor Z [mm^6 m^-3] and rate R [mm/h]."""

    a: float = 200.0
    b: float = 1.6

    def rate_from_dbz(self, dbz: np.ndarray, *, no_echo_dbz: float | None = None) -> np.ndarray:
        """Rain rate [mm/h] from reflectivity [dBZ], same shape as ``dbz``.

        Values at or below ``no_echo_dbz`` (the smallest value the product can report) are
        dry: they become exactly 0 mm/h. NaN stays NaN.
        """
        rate = (10.0 ** (np.asarray(dbz, dtype=np.float64) / 10.0) / self.a) ** (1.0 / self.b)
        if no_echo_dbz is not None:
            rate = np.where(dbz <= no_echo_dbz, 0.0, rate)
        return rate


def to_rate_mm_per_hour(
    values: np.ndarray,
    *,
    units: str,
    accumulation_minutes: float | None = None,
    zr_relation: ZRRelation | None = None,
    no_echo_dbz: float | None = None,
) -> np.ndarray:
    """Convert ``values`` (any shape) in native ``units`` to mm/h, keeping NaN.

    Parameters
    ----------
    values: native field, e.g. ``[y, x]``.
    units: one of :data:`weatherunc.conventions.KNOWN_UNITS`.
    accumulation_minutes: the accumulation period, required for accumulations.
    zr_relation: the Z-R law, required for reflectivity.
    """
    values = np.asarray(values, dtype=np.float64)
    if units in conventions.RATE_UNITS:
        return values
    if units in conventions.ACCUMULATION_UNITS:
        if not accumulation_minutes or accumulation_minutes <= 0:
            raise ValueError(
                f"units {units!r} are an accumulation: a positive accumulation_minutes is required"
            )
        return values * conventions.ACCUMULATION_UNITS[units] * (60.0 / accumulation_minutes)
    if units in conventions.REFLECTIVITY_UNITS:
        if zr_relation is None:
            raise ValueError(f"units {units!r} are reflectivity: a Z-R relation is required")
        return zr_relation.rate_from_dbz(values, no_echo_dbz=no_echo_dbz)
    raise ValueError(f"unknown units {units!r}; known: {sorted(conventions.KNOWN_UNITS)}")


def rate_factor_to_mm_per_hour(units: str) -> float:
    """The factor that converts a rate in ``units`` to mm/h (``"kg m-2 s-1"`` -> 3600).

    Spacing is ignored; accumulations and reflectivity are refused (they need a period or a
    Z-R law, see :func:`to_rate_mm_per_hour`); ``ValueError`` lists the accepted units.
    """
    spelled = " ".join(str(units).split())
    if spelled in conventions.RATE_UNIT_FACTORS:
        return conventions.RATE_UNIT_FACTORS[spelled]
    if spelled in conventions.ACCUMULATION_UNITS:
        reason = "an accumulation, not a rate: divide by its period first"
    elif spelled in conventions.REFLECTIVITY_UNITS:
        reason = "reflectivity, not a rate: convert with weatherunc.units.ZRRelation first"
    else:
        reason = "not a known precipitation rate"
    raise ValueError(
        f"units {units!r} are {reason}; accepted rate units: {sorted(conventions.RATE_UNIT_FACTORS)}"
    )
