"""Station sets: rain-gauge observations at scattered sites (SIC97 CSV layout).

Reference: Dubois, G. (1998), Spatial Interpolation Comparison 97, Journal of
Geographic Information and Decision Analysis 2(2), 1-10.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from weatherunc.errors import InputDataError

if TYPE_CHECKING:
    from weatherunc.catalog import CatalogEntry


@dataclass(frozen=True)
class StationTable:
    """Columns of one station set; every array is ``[station]``."""

    identifier: np.ndarray
    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    covariates: dict[str, np.ndarray]


@dataclass(frozen=True)
class CSVStationReader:
    """A CSV with columns ``ID, x, y, <variable>`` and further numeric covariates."""

    def read_stations(self, path: Path, entry: CatalogEntry) -> StationTable:
        """The table; raises :class:`InputDataError` on missing columns or unreadable files."""
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise InputDataError(source=path, variable=entry.variable, check="readable file", detail=str(error)) from None
        for column in ("ID", "x", "y", entry.variable):
            if column not in table.columns:
                raise InputDataError(source=path, variable=column, check="coordinates present" if column in "xy" else "column present", detail=f"columns are {list(table.columns)}")
        if table["ID"].duplicated().any():
            raise InputDataError(source=path, variable="ID", check="unique stations", detail="duplicated station IDs")
        covariates = {
            column: table[column].to_numpy(dtype=np.float64)
            for column in table.columns
            if column not in ("ID", "x", "y", entry.variable)
        }
        return StationTable(
            identifier=table["ID"].to_numpy(),
            x=table["x"].to_numpy(dtype=np.float64),
            y=table["y"].to_numpy(dtype=np.float64),
            values=table[entry.variable].to_numpy(dtype=np.float64),
            covariates=covariates,
        )
