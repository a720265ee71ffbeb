"""Every catalogue case, in one list: bad inputs that must be refused and valid controls."""

from __future__ import annotations

from tests.bad_inputs.catalog_stations import CATALOG_CASES, CONFIG_CASES, STATION_CASES
from tests.bad_inputs.grids import GRID_CASES
from tests.bad_inputs.jobs import JOB_CASES
from tests.bad_inputs.models import CHECKPOINT_CASES, FILL_CASES, TASK_CASES
from tests.bad_inputs.radar import RADAR_CASES
from tests.bad_inputs.runner import Case

CASES: list[Case] = [
    *GRID_CASES,
    *RADAR_CASES,
    *CATALOG_CASES,
    *CONFIG_CASES,
    *STATION_CASES,
    *CHECKPOINT_CASES,
    *TASK_CASES,
    *FILL_CASES,
    *JOB_CASES,
]
