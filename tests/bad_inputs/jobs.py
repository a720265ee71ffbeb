"""A tiny batch job (2 frames of a synthetic 4-frame 32x32 dataset, inverse-distance weighting, 16-pixel
tiles) and the catalogue cases that re-run it over its earlier outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.bad_inputs.grids import write_grid
from tests.bad_inputs.runner import Case, Scenario, named
from tests.conftest import write_entry
from weatherunc.catalog import Catalog
from weatherunc.errors import InputDataError
from weatherunc.pipelines.job_config import JobConfig
from weatherunc.pipelines.run_job import JobReport, JobStateError, run_job

JOB_NAME = "tiny"


def tiny_values(frames: int = 4, size: int = 32) -> np.ndarray:
    """Rain with dry gaps, ``[frames, size, size]`` mm/h, the same on every call."""
    values = np.random.default_rng(11).gamma(0.5, 2.0, size=(frames, size, size))
    values[values < 0.5] = 0.0
    return values


def write_inputs(folder: Path, values: np.ndarray | None = None) -> Catalog:
    """Entry ``synthetic`` over ``folder/data/synthetic.nc`` (``values``, default :func:`tiny_values`),
    catalog in ``folder/catalog``; returns the loaded catalog."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    write_grid(folder / "data" / "synthetic.nc", tiny_values() if values is None else values)
    write_entry(folder / "catalog")
    return load_inputs(folder)


def load_inputs(folder: Path) -> Catalog:
    """The catalog of inputs written by :func:`write_inputs`."""
    return Catalog.load([folder / "catalog"], data_root_dir=folder / "data")


def tiny_job(output_dir: Path, **overrides: object) -> JobConfig:
    """The tiny job on entry ``synthetic``, writing under ``output_dir / tiny``."""
    options: dict[str, object] = {
        "name": JOB_NAME,
        "dataset": "synthetic",
        "frames": {"limit": 2},
        "targets": {"mode": "withheld", "blocks": 1, "block_pixels": 8, "min_wet_fraction": 0.0},
        "model": {"name": "idw"},
        "tiling": {"tile_pixels": 16, "halo_pixels": 4, "max_context": 200},
        "plots": {"enabled": False},
        "output_dir": str(output_dir),
    }
    options.update(overrides)
    return JobConfig(**options)


def run_tiny_job(folder: Path, output_dir: Path, **options: object) -> JobReport:
    """Run (or resume) the tiny job on the inputs in ``folder``, synchronously."""
    return run_job(
        tiny_job(output_dir),
        scheduler="synchronous",
        progress=False,
        catalog=load_inputs(folder),
        **options,
    )


def _rerun_case(case_id: str, error: type[Exception], match: str, *, restart: bool) -> Case:
    """The tiny job runs once (its run folder is the earlier output); then one frame of its input
    gets a negative rate and the job is re-run (with ``restart`` or without)."""

    def build(work: Path, shared: Path | None) -> Scenario:
        write_inputs(work / "inputs")
        run_tiny_job(work / "inputs", work / "out")
        bad = tiny_values()
        bad[1, 5, 5] = -4.0
        write_grid(work / "inputs" / "data" / "synthetic.nc", bad)
        return Scenario(
            action=lambda: run_tiny_job(work / "inputs", work / "out", restart=restart),
            earlier=work / "out" / JOB_NAME,
        )

    return Case(case_id, "batch job", build, error, match)


JOB_CASES: list[Case] = [
    _rerun_case(
        "job-rerun-on-changed-input",
        JobStateError,
        r"holds the output of another job config, input or model \(observations\.files\[synthetic\.nc\]",
        restart=False,
    ),
    _rerun_case(
        "job-restart-on-negative-rate",
        InputDataError,
        named("precipitation", "non-negative rate"),
        restart=True,
    ),
]
