"""Benchmark: ingest the KNMI event (92 frames), the BoM 10-minute day (144 frames) and the
MRMS CONUS hour (36 frames of 3500x7000) to zarr.

Each configuration runs in a fresh Python process so that its peak memory is its own;
peak memory is the largest sum of resident memory over the process and its children,
sampled every 20 ms. Writes ``benchmarks/results/ingest.json``.

    WEATHERUNC_DATA_DIR=../shared/data .venv/bin/python benchmarks/ingest.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import machine, require_data_dir, write_result

REPOSITORY = Path(__file__).resolve().parent.parent
DATASETS = ("knmi_20100826", "bom_prcp_c10_20201031", "mrms_20190610")
CONFIGURATIONS = (("synchronous", 1), ("threads", 2), ("processes", 2))


def _peak_memory_sampler(stop: threading.Event, peak: list[float]) -> None:
    import psutil

    process = psutil.Process()
    while not stop.is_set():
        total = 0
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total / 2**20)
        time.sleep(0.02)


def run_one(name: str, scheduler: str, workers: int) -> dict[str, object]:
    """Ingest ``name`` once in this process and return its figures."""
    from weatherunc.catalog import Catalog
    from weatherunc.pipelines.ingest import ingest

    catalog = Catalog.load()
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=_peak_memory_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = ingest(
            name,
            Path(folder) / f"{name}.zarr",
            catalog=catalog,
            scheduler=scheduler,
            workers=workers,
            progress=False,
        )
        wall = time.perf_counter() - start
        store_bytes = sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
    stop.set()
    sampler.join()
    return {
        "dataset": name,
        "frames": report.frames_total,
        "scheduler": scheduler,
        "workers": workers,
        "wall_s": round(wall, 2),
        "frames_per_second": round(report.frames_total / wall, 2),
        "peak_memory_mb": round(peak[0], 1),
        "store_mb": round(store_bytes / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("NAME", "SCHEDULER", "WORKERS"), help="run one configuration (internal)"
    )
    arguments = parser.parse_args()
    if arguments.one:
        name, scheduler, workers = arguments.one
        print(json.dumps(run_one(name, scheduler, int(workers))))
        return
    require_data_dir()
    rows = []
    for name in DATASETS:
        for scheduler, workers in CONFIGURATIONS:
            output = subprocess.run(
                [sys.executable, __file__, "--one", name, scheduler, str(workers)],
                check=True,
                capture_output=True,
                text=True,
                env=dict(os.environ, PYTHONPATH=str(REPOSITORY)),
            ).stdout
            row = json.loads(output.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{name:<24} {scheduler:<11} workers={workers}  {row['wall_s']:7.2f} s  "
                f"{row['frames_per_second']:7.2f} frames/s  peak {row['peak_memory_mb']:7.1f} MB"
            )
    for row in rows:
        sequential = next(
            r for r in rows if r["dataset"] == row["dataset"] and r["scheduler"] == "synchronous"
        )
        row["speedup_vs_sequential"] = round(sequential["wall_s"] / row["wall_s"], 2)
        row["sequential_wall_s"] = sequential["wall_s"]
    result = {
        "benchmark": (
            "ingest catalog entries to zarr (read with pysteps/xarray, convert to mm/h, check, write one "
            "chunk per frame)"
        ),
        "machine": machine(),
        "rows": rows,
    }
    print(f"wrote {write_result('ingest.json', result)}")


if __name__ == "__main__":
    main()
