"""Station sets: rain-gauge observations at scattered sites (SIC97 CSV layout).

Reference: Dubois, G. (1998), Spatial Interpolation Comparison 97, Journal of
Geographic Information and Decision Analysis 2(2), 1-10.
"""

from __future__ import annotations

import csv
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
        """The table; raises :class:`InputDataError` on missing columns, unreadable files, rows with
        fewer fields than the header (a cut file), duplicated IDs, cells that are not numbers
        (coordinates, values, covariates), covariates that are not finite and co-located stations."""
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise InputDataError(
                source=path, variable=entry.variable, check="readable file", detail=str(error)
            ) from None
        for column in ("ID", "x", "y", entry.variable):
            if column not in table.columns:
                raise InputDataError(
                    source=path,
                    variable=column,
                    check="coordinates present" if column in "xy" else "column present",
                    detail=f"columns are {list(table.columns)}",
                )
        _check_complete_rows(path, table)
        if table["ID"].duplicated().any():
            raise InputDataError(
                source=path, variable="ID", check="unique stations", detail="duplicated station IDs"
            )
        covariates = {}
        for column in table.columns:
            if column not in ("ID", "x", "y", entry.variable):
                values = numeric_column(table, column, path)
                if not np.all(np.isfinite(values)):
                    row = int(np.argmax(~np.isfinite(values)))
                    raise InputDataError(
                        source=path,
                        variable=column,
                        check="finite covariates",
                        detail=f"{_row_name(table, row)} holds {values[row]:g}",
                    )
                covariates[column] = values
        x, y = numeric_column(table, "x", path), numeric_column(table, "y", path)
        _check_unique_locations(path, table, x, y)
        return StationTable(
            identifier=table["ID"].to_numpy(),
            x=x,
            y=y,
            values=numeric_column(table, entry.variable, path),
            covariates=covariates,
        )


def _check_complete_rows(path: Path, table: pd.DataFrame) -> None:
    """Fail (check ``complete rows``) on a data row with fewer fields than the header: pandas
    reads the missing cells as empty, so a file cut inside its last row would pass with a
    shortened number and NaN after it. Blank lines are skipped, as pandas skips them."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = csv.reader(handle)
        next(rows, None)
        for number, row in enumerate(row for row in rows if row):
            if len(row) < len(table.columns):
                raise InputDataError(
                    source=path,
                    variable=str(table.columns[len(row)]),
                    check="complete rows",
                    detail=(
                        f"data row {number + 1} has {len(row)} of {len(table.columns)} fields; "
                        "the file may be truncated"
                    ),
                )


def _check_unique_locations(path: Path, table: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> None:
    """Fail (check ``unique station locations``) when two stations share both coordinates: the
    models take them for one point observed twice (a singular covariance)."""
    duplicated = pd.DataFrame({"x": x, "y": y}).duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        first = int(np.flatnonzero((x == x[row]) & (y == y[row]))[0])
        raise InputDataError(
            source=path,
            variable="x, y",
            check="unique station locations",
            detail=(
                f"{_row_name(table, row)} is at x={x[row]:g}, y={y[row]:g}, like {_row_name(table, first)}; "
                "merge or average co-located stations"
            ),
        )


def numeric_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Column ``column`` of a CSV table as float64 ``[row]``, empty cells NaN; a cell that is not
    a number raises :class:`InputDataError` naming the file, the column and the station."""
    values = pd.to_numeric(table[column], errors="coerce")
    text = values.isna() & table[column].notna()
    if text.any():
        row = int(np.argmax(text.to_numpy()))
        raise InputDataError(
            source=path,
            variable=column,
            check="numeric values",
            detail=f"{_row_name(table, row)} holds {table[column].iloc[row]!r}",
        )
    return values.to_numpy(dtype=np.float64)


def _row_name(table: pd.DataFrame, row: int) -> str:
    """``data row N (ID ...)``: where a bad cell is, counted from 1 below the header."""
    return f"data row {row + 1} (ID {table['ID'].iloc[row]})"
