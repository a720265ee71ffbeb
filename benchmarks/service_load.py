"""Benchmark: `weatherunc serve` under load: concurrent clients of mixed EDR position and map requests, and
one POST /fill of 300 gauges onto a 256 x 256 grid with the GP.

Starts ``weatherunc serve STORE`` on a free loopback port (a subprocess, so its memory is its own),
then runs ``--clients`` concurrent clients (asyncio tasks sharing one ``aiohttp.ClientSession`` with
a connection each; aiohttp, because the load generator shares the machine's cores with the service
and httpx spends several times more CPU per request) for
``--seconds``: each sends, one after the other, an EDR position query (four in five requests: a
random pixel of the grid in longitude/latitude, at a random time of the store, every default
variable) or a map request (a random layer and time; the first of each is drawn, later ones come
from the service's memory). Times are drawn from the store's latest ``--times`` (default 4: the
frames a map page's users look at; 0 for every time of the store). Records requests per second,
latency percentiles per request kind,
errors (5xx answers and dropped connections), the service's peak resident memory (``VmHWM``), then
the latency of one fill of 300 random gauges onto a 256 x 256 longitude/latitude grid over the
store's area with the GP. Target: EDR position p95 <= 100 ms at 50 clients. Writes
benchmarks/results/service_load.json and service_load.md.

    .venv/bin/python benchmarks/service_load.py --store outputs/knmi_anp/prediction.zarr [--clients 50]
    [--seconds 60]

(``weatherunc run weatherunc/pipelines/jobs/knmi_anp.yaml`` writes that KNMI job store.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, result_header, write_result

from weatherunc.service.server import background_service

STORE = Path("outputs/knmi_anp/prediction.zarr")
LAYERS = ("observed", "mean", "std", "exceedance")
MAP_SHARE = 0.2


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"count": 0}
    values = 1000.0 * np.asarray(latencies)
    return {
        "count": len(latencies),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
    }


async def _client(
    session, url: str, metadata: dict, deadline: float, record: dict, rng: random.Random
) -> None:
    west, south, east, north = metadata["grid"]["bounds_lon_lat"]
    times = metadata["query_times"]
    while time.perf_counter() < deadline:
        if rng.random() < MAP_SHARE:
            kind = "map"
            request = (
                f"{url}datasets/{metadata['name']}/map/{rng.choice(LAYERS)}.png",
                {"time": rng.choice(times)},
            )
        else:
            kind = "edr_position"
            # The bounds are those of the grid's edges; points outside the grid answer 404, not errors.
            point = f"POINT({rng.uniform(west, east):.5f} {rng.uniform(south, north):.5f})"
            request = (
                f"{url}datasets/{metadata['name']}/edr/position",
                {"coords": point, "datetime": rng.choice(times)},
            )
        started = time.perf_counter()
        try:
            async with session.get(request[0], params=request[1]) as response:
                await response.read()
                status = response.status
        except Exception:  # a dropped or refused connection counts as an error
            status = None
        elapsed = time.perf_counter() - started
        if status is None or status >= 500:
            record["errors"] += 1
        else:
            record["latencies"].setdefault(kind, []).append(elapsed)
            record["statuses"][str(status)] = record["statuses"].get(str(status), 0) + 1


async def _load(url: str, metadata: dict, clients: int, seconds: float) -> dict:
    import aiohttp

    record: dict = {"latencies": {}, "errors": 0, "statuses": {}}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=300.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                _client(session, url, metadata, deadline, record, random.Random(number))
                for number in range(clients)
            )
        )
        elapsed = time.perf_counter() - started
    completed = sum(len(values) for values in record["latencies"].values())
    return {
        "requests_per_s": round(completed / elapsed, 1),
        "requests": completed,
        "wall_s": round(elapsed, 1),
        "latency_ms": {kind: _percentiles(values) for kind, values in sorted(record["latencies"].items())},
        "errors": record["errors"],
        "statuses": record["statuses"],
    }


def _fill(url: str, metadata: dict, gauges: int, size: int) -> dict:
    import httpx

    west, south, east, north = metadata["grid"]["bounds_lon_lat"]
    rng = np.random.default_rng(0)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
            "properties": {"rate": float(rate)},
        }
        for lon, lat, rate in zip(
            rng.uniform(west, east, gauges), rng.uniform(south, north, gauges), rng.gamma(0.5, 2.0, gauges)
        )
    ]
    target = {
        "type": "Grid",
        "x": np.linspace(west, east, size).tolist(),
        "y": np.linspace(north, south, size).tolist(),
    }
    body = {
        "model": "gp",
        "observations": {"type": "FeatureCollection", "features": features},
        "target": target,
    }
    started = time.perf_counter()
    response = httpx.post(url + "fill", json=body, timeout=None)
    latency = time.perf_counter() - started
    return {
        "model": "gp",
        "gauges": gauges,
        "grid": [size, size],
        "status": response.status_code,
        "latency_s": round(latency, 2),
        "answer_bytes": len(response.content),
        **({"detail": response.json().get("detail")} if response.status_code != 200 else {}),
    }


def _peak_memory_mb(pid: int) -> float | None:
    """Peak resident memory [MB] of the process ``pid`` so far (``VmHWM``; Linux only)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    lines = [line for line in status.read_text().splitlines() if line.startswith("VmHWM")]
    return int(lines[0].split()[1]) / 1024 if lines else None


def _markdown(result: dict) -> str:
    load, fill = result["load"], result["fill"]
    rows = "\n".join(
        f"| {kind} | {values.get('count', 0)} | {values.get('p50', '–')} | {values.get('p95', '–')} | "
        f"{values.get('p99', '–')} |"
        for kind, values in load["latency_ms"].items()
    )
    command = (
        f"benchmarks/service_load.py --store {result['store']} --clients {result['clients']} "
        f"--seconds {result['seconds']} --times {result['query_times']}"
    )
    computer = result["machine"]
    return f"""# Service load ({computer["date"]})

`{command}`

On {computer["cpu_count"]} cores ({computer["processor"]}), clients ({result["client_library"]}) and service
on the same machine; load average (1, 5, 15 min) {result["load_average"]["before"]} before the
load phase, {result["load_average"]["after"]} after it.
Target: EDR position p95 <= 100 ms at 50 clients.

- {load["requests_per_s"]} requests/s over {load["wall_s"]} s, {load["errors"]} errors (5xx or dropped),
  answers by status {load["statuses"]}; service peak memory {result["peak_memory_mb"]} MB.
- `POST /fill` of {fill["gauges"]} gauges onto a {fill["grid"][0]} x {fill["grid"][1]} grid with the GP:
  status {fill["status"]}, {fill["latency_s"]} s.

| request | count | p50 [ms] | p95 [ms] | p99 [ms] |
|---|---|---|---|---|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--store", type=Path, default=STORE, help="a complete prediction store (a KNMI job's)"
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--gauges", type=int, default=300)
    parser.add_argument("--grid", type=int, default=256, help="the fill's target grid is GRID x GRID")
    parser.add_argument("--fill-timeout", type=float, default=900.0, help="the service's --fill-timeout [s]")
    parser.add_argument("--times", type=int, default=4, help="query the store's latest TIMES times (0: all)")
    arguments = parser.parse_args()
    if not arguments.store.exists():
        sys.exit(
            f"{arguments.store} does not exist; run `weatherunc run weatherunc/pipelines/jobs/knmi_anp.yaml` "
            "first"
        )
    import httpx

    log = RESULTS / "service_load.log"
    RESULTS.mkdir(parents=True, exist_ok=True)
    options = ["--fill-timeout", str(arguments.fill_timeout)]
    with background_service([arguments.store], log=log, options=options) as service:
        metadata = next(iter(httpx.get(service.url + "stores", timeout=60).json().values()))
        metadata["query_times"] = (
            metadata["times"][-arguments.times :] if arguments.times else metadata["times"]
        )
        load_before = [round(value, 2) for value in os.getloadavg()]
        load = asyncio.run(_load(service.url, metadata, arguments.clients, arguments.seconds))
        load_after = [round(value, 2) for value in os.getloadavg()]
        peak_under_load = _peak_memory_mb(service.process.pid)
        fill = _fill(service.url, metadata, arguments.gauges, arguments.grid)
        peak = _peak_memory_mb(service.process.pid)
    log.unlink(missing_ok=True)
    result = {
        **result_header(__doc__),
        "store": str(arguments.store),
        "times": len(metadata["times"]),
        "query_times": len(metadata["query_times"]),
        "grid": metadata["grid"]["shape"],
        "clients": arguments.clients,
        "client_library": "aiohttp",
        # the machine's 1, 5 and 15 minute load averages just before and just after the load phase
        "load_average": {"before": load_before, "after": load_after},
        "seconds": arguments.seconds,
        "requests_per_s": load["requests_per_s"],
        "latency_ms": load["latency_ms"],
        "errors": load["errors"],
        "peak_memory_mb": round(peak_under_load, 1) if peak_under_load is not None else None,
        "peak_memory_with_fill_mb": round(peak, 1) if peak is not None else None,
        "load": load,
        "fill": fill,
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('service_load.json', result)}")
    (RESULTS / "service_load.md").write_text(_markdown(result))


if __name__ == "__main__":
    main()
