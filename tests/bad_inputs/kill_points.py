"""Kill points: an ingest or a batch job is SIGKILLed at a stage boundary, then resumed, and the
resumed output must equal an uninterrupted run's byte for byte, with no staging folder left.

Each kill runs in a forked child process that first patches one function at the boundary so
that it sends SIGKILL to its own process (before or after doing its work), then runs the
ingest or job; the parent resumes with a plain re-run. Forking keeps the cost of a kill point
to the run itself (no second interpreter importing the scientific stack).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

import weatherunc.pipelines.job_store as job_store_module
import weatherunc.pipelines.run_job as run_job_module
import weatherunc.store as store_module
from tests.bad_inputs.jobs import JOB_NAME, load_inputs, run_tiny_job, tiny_values, write_inputs
from tests.bad_inputs.runner import tree_digest
from weatherunc.pipelines.ingest import ingest
from weatherunc.pipelines.job_store import JobStore
from weatherunc.store import StagedStore

#: Seconds a killed child may take before it counts as hung.
CHILD_TIMEOUT = 600


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at(
    owner: Any, name: str, *, nth: int = 1, after: bool = False, when: Callable[..., bool] | None = None
) -> None:
    """Patch ``owner.name`` so that its ``nth`` call (counting calls for which ``when(*args)``
    holds) kills the process, before the original runs or, with ``after``, once it returned."""
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counted = when is None or when(*args, **kwargs)
        calls[0] += counted
        if counted and calls[0] == nth and not after:
            _die()
        result = original(*args, **kwargs)
        if counted and calls[0] == nth and after:
            _die()
        return result

    setattr(owner, name, wrapper)


def _half_frame(nth: int) -> None:
    """The ``nth`` frame's chunk is written, then the process dies before its marker exists."""
    original = StagedStore.write_frame
    calls = [0]

    def write_frame(self: StagedStore, variable: str, index: int, values: np.ndarray) -> None:
        calls[0] += 1
        if calls[0] == nth:
            zarr.open_array(self.zarr_path / variable, mode="r+")[index] = values
            _die()
        original(self, variable, index, values)

    StagedStore.write_frame = write_frame  # type: ignore[method-assign]


def _half_tile(nth: int) -> None:
    """Half of the ``nth`` tile's variables are written, then the process dies."""
    original = JobStore.write_tile
    calls = [0]

    def write_tile(self: JobStore, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == nth:
            frame, rows, columns, blocks = args[:4]
            for name in sorted(blocks)[: len(blocks) // 2 + 1]:
                zarr.open_array(self.zarr_path / name, mode="r+")[frame, rows, columns] = blocks[name]
            _die()
        original(self, *args, **kwargs)

    JobStore.write_tile = write_tile  # type: ignore[method-assign]


def _replacing(predicate: Callable[[Path, Path], bool]) -> Callable[..., bool]:
    """A ``when`` for ``os.replace`` calls whose (source, destination) satisfy ``predicate``."""
    return lambda source, destination, *rest, **options: predicate(Path(source), Path(destination))


@dataclass(frozen=True)
class KillPoint:
    """Where a run is killed: ``arm()`` installs the patch in the child before the run."""

    id: str
    kind: Literal["ingest", "job"]
    arm: Callable[[], None]
    description: str
    #: Start from an earlier store of other content at the output path (replaced with overwrite).
    over_earlier_store: bool = False


KILL_POINTS: list[KillPoint] = [
    KillPoint(
        "ingest-staging-metadata-written",
        "ingest",
        lambda: kill_at(store_module, "hide_root_metadata"),
        "staging folder being built: zarr metadata written, not yet hidden, no fingerprint",
    ),
    KillPoint(
        "ingest-before-fingerprint",
        "ingest",
        lambda: kill_at(store_module, "_write_atomically"),
        "staging folder being built: metadata hidden, fingerprint not written",
    ),
    KillPoint(
        "ingest-staging-created",
        "ingest",
        lambda: kill_at(StagedStore, "begin", after=True),
        "right after the staging folder was renamed into place",
    ),
    KillPoint("ingest-mid-frame", "ingest", lambda: _half_frame(2), "2nd frame's chunk written, no marker"),
    KillPoint(
        "ingest-after-two-frames",
        "ingest",
        lambda: kill_at(StagedStore, "write_frame", nth=3),
        "two frames done",
    ),
    KillPoint(
        "ingest-before-complete",
        "ingest",
        lambda: kill_at(StagedStore, "complete"),
        "every frame written, before the completion marker",
    ),
    KillPoint(
        "ingest-metadata-revealed-before-rename",
        "ingest",
        lambda: kill_at(store_module, "reveal_root_metadata", after=True),
        "root metadata marked complete, store not yet renamed into place",
    ),
    KillPoint(
        "ingest-overwrite-old-store-retired",
        "ingest",
        lambda: kill_at(
            os, "replace", after=True, when=_replacing(lambda s, d: d.name.endswith(".replaced"))
        ),
        "overwrite: the earlier store moved aside, the new one not yet renamed into place",
        over_earlier_store=True,
    ),
    KillPoint(
        "ingest-renamed-before-cleanup",
        "ingest",
        lambda: kill_at(
            os, "replace", after=True, when=_replacing(lambda s, d: d.name == "observations.zarr")
        ),
        "store renamed into place, staging folder not yet removed",
    ),
    KillPoint(
        "job-during-observations-ingest",
        "job",
        lambda: kill_at(StagedStore, "write_frame", nth=2),
        "stage 1: one frame of the observations written",
    ),
    KillPoint(
        "job-after-observations",
        "job",
        lambda: kill_at(run_job_module, "select_frames"),
        "observations complete, prediction not started",
    ),
    KillPoint(
        "job-staging-created",
        "job",
        lambda: kill_at(JobStore, "begin", after=True),
        "right after the prediction's staging folder was created",
    ),
    KillPoint("job-mid-tile", "job", lambda: _half_tile(3), "half of the 3rd tile's variables written"),
    KillPoint(
        "job-manifest-entry-temporary",
        "job",
        lambda: kill_at(
            os,
            "replace",
            nth=2,
            when=_replacing(lambda s, d: s.name.endswith(".tmp") and d.parent.name == "tiles"),
        ),
        "2nd tile written, its manifest entry not yet renamed into place",
    ),
    KillPoint(
        "job-after-tile", "job", lambda: kill_at(JobStore, "write_tile", nth=5, after=True), "five tiles done"
    ),
    KillPoint(
        "job-revealed-before-verification",
        "job",
        lambda: kill_at(JobStore, "reveal", after=True),
        "every tile written and the store revealed, not verified",
    ),
    KillPoint(
        "job-metrics-before-figures",
        "job",
        lambda: kill_at(run_job_module, "write_figures"),
        "metrics.json written, figures not",
    ),
    KillPoint(
        "job-before-complete",
        "job",
        lambda: kill_at(JobStore, "complete"),
        "verified, before the completion marker",
    ),
    KillPoint(
        "job-complete-before-rename",
        "job",
        lambda: kill_at(job_store_module, "reveal_root_metadata", nth=2, after=True),
        "store marked complete, not yet renamed into place",
    ),
    KillPoint(
        "job-renamed-before-cleanup",
        "job",
        lambda: kill_at(os, "replace", after=True, when=_replacing(lambda s, d: d.name == "prediction.zarr")),
        "store renamed into place, staging folder not yet removed",
    ),
]


@dataclass(frozen=True)
class KillOutcome:
    """What a kill point did: whether the child died by SIGKILL, and whether the resumed output
    equals the uninterrupted run's byte for byte with nothing left over."""

    point: KillPoint
    killed: bool
    identical: bool
    leftovers: list[str]
    differing: list[str]

    @property
    def passed(self) -> bool:
        """Killed, resumed identically, nothing left over."""
        return self.killed and self.identical and not self.leftovers

    def describe(self) -> str:
        """One line for a failure message or a report."""
        return (
            f"{self.point.id}: killed {self.killed}, identical {self.identical} "
            f"(differing {self.differing[:5]}), leftovers {self.leftovers}"
        )


class KillBench:
    """Inputs and uninterrupted reference outputs in ``folder``, and :meth:`run` for each point."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.inputs = folder / "inputs"
        self.output = folder / "out"
        self.references: dict[str, Path] = {}
        write_inputs(self.inputs)
        write_inputs(folder / "other_inputs", tiny_values() * 0.5)

    def _ingest(self, inputs: Path, *, overwrite: bool = False) -> None:
        ingest(
            "synthetic",
            self.output / "observations.zarr",
            catalog=load_inputs(inputs),
            overwrite=overwrite,
            scheduler="synchronous",
            progress=False,
        )

    def _run(self, kind: str, point: KillPoint | None = None) -> None:
        if kind == "ingest":
            self._ingest(self.inputs, overwrite=point is not None and point.over_earlier_store)
        else:
            run_tiny_job(self.inputs, self.output)

    def _produced(self, kind: str) -> Path:
        return self.output / ("observations.zarr" if kind == "ingest" else JOB_NAME)

    def reference(self, kind: str) -> Path:
        """The uninterrupted run's output of ``kind``, made on first use at the same path as the kill runs."""
        if kind not in self.references:
            shutil.rmtree(self.output, ignore_errors=True)
            self._run(kind)
            kept = self.folder / f"reference_{kind}"
            shutil.rmtree(kept, ignore_errors=True)
            self._produced(kind).rename(kept)
            self.references[kind] = kept
        return self.references[kind]

    def run(self, point: KillPoint) -> KillOutcome:
        """Kill a run at ``point`` in a forked child, resume it here, compare with the reference."""
        reference = self.reference(point.kind)
        shutil.rmtree(self.output, ignore_errors=True)
        if point.over_earlier_store:
            self._ingest(self.folder / "other_inputs")
        child = multiprocessing.get_context("fork").Process(target=_child, args=(self, point))
        child.start()
        child.join(CHILD_TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
        killed = child.exitcode == -signal.SIGKILL
        self._run(point.kind, point)
        expected, resumed = _comparable(reference), _comparable(self._produced(point.kind))
        differing = sorted(
            name for name in set(expected) | set(resumed) if expected.get(name) != resumed.get(name)
        )
        leftovers = sorted(
            str(path.relative_to(self.output))
            for path in self.output.rglob("*")
            if path.name.endswith((".partial", ".creating", ".replaced", ".tmp"))
        )
        return KillOutcome(point, killed, not differing, leftovers, differing)


def _child(bench: KillBench, point: KillPoint) -> None:
    """In the forked child: a fresh Dask thread pool (the parent's threads did not survive the
    fork), the patch, then the run, which the patch ends with SIGKILL."""
    import dask.threaded

    dask.threaded.default_pool = None
    point.arm()
    bench._run(point.kind, point)


def _comparable(path: Path) -> dict[str, str]:
    """File digests of an output folder; ``metrics.json`` without what describes the run that
    completed the job (its seconds and the tiles it computed)."""
    digests = tree_digest(path) if path.exists() else {}
    metrics = path / "metrics.json"
    if metrics.is_file():
        values = json.loads(metrics.read_text())
        for key in ("seconds", "tiles_computed"):
            values.pop(key, None)
        digests["metrics.json"] = json.dumps(values, sort_keys=True)
    return digests
