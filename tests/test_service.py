"""``weatherunc serve`` over real HTTP: stores served, metadata, zarr, EDR queries, maps, fills, refusals."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.service_support import make_job_store
from weatherunc import conventions

httpx = pytest.importorskip("httpx", reason="the service extra is not installed")
pytest.importorskip("xpublish", reason="the service extra is not installed")
from weatherunc.service.server import background_service  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A folder with one complete job store, one not marked complete and one staging folder, served."""
    root = tmp_path_factory.mktemp("served")
    store = make_job_store(root)
    incomplete = root / "broken" / "prediction.zarr"
    shutil.copytree(store, incomplete)
    metadata = json.loads((incomplete / "zarr.json").read_text())
    del metadata["attributes"]["weatherunc_complete"]
    (incomplete / "zarr.json").write_text(json.dumps(metadata))
    shutil.copytree(store, root / "staged" / "prediction.zarr.partial" / "store.zarr")
    with background_service([root], log=root / "serve.log") as service:
        yield service.url, xr.open_zarr(store, consolidated=False).load(), root


@pytest.fixture(scope="module")
def client(served):
    with httpx.Client(base_url=served[0], timeout=120) as session:
        yield session


def _withheld_pixel(local: xr.Dataset) -> tuple[int, int]:
    row, column = np.argwhere(local[conventions.OBSERVATION].values[0] == conventions.WITHHELD)[0]
    return int(row), int(column)


def test_only_the_complete_store_is_served(client: httpx.Client, served) -> None:
    assert client.get("datasets").json() == ["mrms_idw"]
    log = (served[2] / "serve.log").read_text()
    assert f"at {served[0]}" in log  # the loopback address by default
    assert "broken/prediction.zarr: not served" in log and "observations.zarr: not served" not in log
    assert list(client.get("stores").json()) == ["mrms_idw"]


def test_the_page_reads_every_output_name_from_the_server(client: httpx.Client) -> None:
    names = client.get("names").json()
    assert names["std"] == conventions.PRECIPITATION_STD and names["mean"] == conventions.PRECIPITATION_MEAN
    assert set(names.values()) <= {value for value in vars(conventions).values() if isinstance(value, str)}
    page = client.get("static/page.js").text
    assert not [name for name in names.values() if f'"{name}"' in page or f".{name}" in page]


def test_metadata_names_times_grid_variables_model_and_provenance(client: httpx.Client, served) -> None:
    metadata = client.get("datasets/mrms_idw/metadata").json()
    local = served[1]
    assert metadata["times"] == ["2019-06-10T00:30:00Z", "2019-06-10T00:50:00Z"]
    assert metadata["grid"]["shape"] == {"y": 256, "x": 256} and metadata["grid"]["crs_wkt"].startswith(
        "GEOGCRS"
    )
    assert metadata["variables"][conventions.PRECIPITATION_MEAN]["units"] == "mm h-1"
    assert metadata["model"] == "idw" and metadata["provenance"]["observations"]
    assert metadata["axes"]["threshold"] == [float(value) for value in local.threshold.values]
    assert metadata["axes"]["bin_upper"][-1] is None  # the open last bin


def test_zarr_endpoint_opens_with_xarray_over_http(served) -> None:
    remote = xr.open_zarr(served[0] + "datasets/mrms_idw/zarr", consolidated=True)
    local = served[1]
    np.testing.assert_allclose(
        remote[conventions.PRECIPITATION_MEAN].values,
        local[conventions.PRECIPITATION_MEAN].values,
        equal_nan=True,
    )
    assert remote[conventions.PRECIPITATION_STD].attrs["units"] == "mm h-1"
    assert remote[conventions.CRS_VARIABLE].attrs["grid_mapping_name"] == "latitude_longitude"


def test_position_query_returns_the_pixels_distribution(client: httpx.Client, served) -> None:
    local = served[1]
    row, column = _withheld_pixel(local)
    longitude, latitude = float(local.x[column]), float(local.y[row])
    coverage = client.get(
        "datasets/mrms_idw/edr/position",
        params={"coords": f"POINT({longitude} {latitude})", "datetime": "2019-06-10T00:30:00Z"},
    ).json()
    ranges, pixel = coverage["ranges"], coverage["weatherunc:pixel"]
    assert (pixel["row"], pixel["column"]) == (row, column) and coverage["domain"][
        "domainType"
    ] == "PointSeries"
    expected = local.isel(time=0, y=row, x=column)
    assert ranges[conventions.PRECIPITATION_MEAN]["values"][0] == pytest.approx(
        float(expected[conventions.PRECIPITATION_MEAN])
    )
    assert ranges[conventions.PRECIPITATION_QUANTILE]["shape"] == [1, 9]
    assert sum(ranges[conventions.BIN_PROBABILITY]["values"]) == pytest.approx(1.0, abs=1e-4)
    assert ranges[conventions.OBSERVATION]["values"] == [conventions.WITHHELD]
    assert coverage["parameters"][conventions.OBSERVATION]["categoryEncoding"]["withheld"] == 3
    native = client.get(
        "datasets/mrms_idw/edr/position",
        params={
            "coords": f"POINT({longitude} {latitude})",
            "crs": "native",
            "parameter-name": "precipitation_std",
        },
    ).json()
    assert (
        list(native["ranges"]) == [conventions.PRECIPITATION_STD]
        and len(native["domain"]["axes"]["t"]["values"]) == 2
    )


def test_area_query_returns_every_pixel_inside_the_polygon(client: httpx.Client, served) -> None:
    local = served[1]
    # Six by six pixel centres (0.01 degrees apart) inside, the edges between centres.
    x0, y0, x1, y1 = (
        float(local.x[100]) - 0.004,
        float(local.y[100]) + 0.004,
        float(local.x[105]) + 0.004,
        float(local.y[105]) - 0.004,
    )
    polygon = f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
    coverage = client.get(
        "datasets/mrms_idw/edr/area",
        params={
            "coords": polygon,
            "datetime": "2019-06-10T00:30Z/2019-06-10T00:50Z",
            "parameter-name": "precipitation",
        },
    ).json()
    assert (
        coverage["domain"]["domainType"] == "MultiPointSeries"
        and coverage["weatherunc:pixels"]["count"] == 36
    )
    values = np.asarray(coverage["ranges"][conventions.PRECIPITATION]["values"], dtype=float).reshape(2, 36)
    expected = (
        local[conventions.PRECIPITATION].isel(y=slice(100, 106), x=slice(100, 106)).values.reshape(2, 36)
    )
    np.testing.assert_allclose(np.sort(values, axis=1), np.sort(expected, axis=1), equal_nan=True)


def test_map_images_are_pngs_and_a_repeat_comes_from_memory(client: httpx.Client) -> None:
    started = time.perf_counter()
    first = client.get("datasets/mrms_idw/map/std.png", params={"time": "2019-06-10T00:50Z"})
    drawn = time.perf_counter() - started
    started = time.perf_counter()
    again = client.get("datasets/mrms_idw/map/std.png", params={"time": "2019-06-10T00:50Z"})
    cached = time.perf_counter() - started
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content.startswith(b"\x89PNG") and again.content == first.content and cached < drawn / 4
    geometry = client.get("datasets/mrms_idw/map/exceedance.json", params={"threshold": 1}).json()
    left, top, right, bottom = geometry["axes_box"]
    assert 0 <= left < right <= geometry["width"] and 0 <= top < bottom <= geometry["height"]


def _gauges(count: int) -> dict:
    rng = np.random.default_rng(1)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [float(rng.uniform(-99, -98)), float(rng.uniform(30, 31))],
                },
                "properties": {"rate": float(rng.gamma(0.5, 2.0))},
            }
            for _ in range(count)
        ],
    }


def test_fill_gauges_onto_points_and_a_grid(client: httpx.Client) -> None:
    points = client.post(
        "fill",
        json={
            "model": "idw",
            "observations": _gauges(20),
            "target": {"type": "MultiPoint", "coordinates": [[-98.5, 30.5]]},
        },
    ).json()
    properties = points["features"][0]["properties"]
    assert (
        properties[conventions.PRECIPITATION_STD] > 0
        and len(properties[conventions.EXCEEDANCE_PROBABILITY]) == 4
    )
    target = {"type": "Grid", "x": list(np.linspace(-99, -98, 5)), "y": list(np.linspace(30, 31, 4))}
    grid = client.post(
        "fill",
        json={"model": "idw", "observations": _gauges(20), "target": target, "outputs": ["bin_probability"]},
    ).json()
    bins = np.asarray(grid["variables"][conventions.BIN_PROBABILITY])
    assert bins.shape == (4, 5, 10) and np.allclose(bins.sum(axis=-1), 1.0, atol=1e-4)
    shares = client.post(
        "fill",
        json={"model": "gp", "observations": _gauges(20), "target": target, "outputs": ["epistemic_share"]},
    ).json()["variables"]
    share = np.asarray(shares[conventions.EPISTEMIC_SHARE])
    assert list(shares) == [conventions.EPISTEMIC_SHARE] and share.shape == (4, 5)
    assert ((share > 0) & (share <= 1)).all()
    too_few = client.post(
        "fill",
        json={
            "model": "kriging",
            "observations": _gauges(2),
            "target": {"type": "MultiPoint", "coordinates": [[-98.5, 30.5]]},
        },
    )
    assert too_few.status_code == 400 and "kriging needs at least 3 gauges, got 2" in too_few.json()["detail"]


def test_fill_says_which_calibration_it_applied(client: httpx.Client) -> None:
    target = {"type": "MultiPoint", "coordinates": [[-98.5, 30.5], [-98.2, 30.7]]}
    plain = client.post("fill", json={"model": "idw", "observations": _gauges(60), "target": target}).json()
    assert plain["calibration"] == "uncalibrated"
    calibrated = client.post(
        "fill", json={"model": "idw+self", "observations": _gauges(60), "target": target}
    ).json()
    assert calibrated["model"] == "idw+self" and calibrated["calibration"].startswith("self-")


def test_fill_a_grid_with_gaps(client: httpx.Client) -> None:
    values = np.random.default_rng(2).gamma(0.5, 2.0, size=(6, 8)).tolist()
    values[2][3] = values[2][4] = None
    grid = {
        "type": "Grid",
        "x": list(np.linspace(5.0, 5.7, 8)),
        "y": list(np.linspace(52.0, 52.5, 6)),
        "values": values,
    }
    filled = client.post("fill", json={"model": "idw", "observations": grid}).json()
    observation = np.asarray(filled["variables"][conventions.OBSERVATION])
    assert observation[2, 3] == 0 and observation[0, 0] == 1  # 0 filled, 1 observed
    assert filled["variables"][conventions.PRECIPITATION_MEAN][2][3] is not None
    shares = client.post(
        "fill", json={"model": "gp", "observations": grid, "outputs": ["epistemic_share"]}
    ).json()["variables"][conventions.EPISTEMIC_SHARE]
    assert 0 < shares[2][3] < 1 and shares[0][0] is None  # no predictive variance where observed
    calibrated = client.post("fill", json={"model": "idw+self", "observations": grid})
    assert calibrated.status_code == 200, calibrated.text  # a frame's fits per tile, labelled together
    assert calibrated.json()["calibration"].startswith(("self-", "uncalibrated"))


POINT = "POINT(-98.5 30.5)"
BAD_REQUESTS = [
    ("get", "datasets/nowhere/metadata", None, 404, "no store 'nowhere'"),
    ("get", "datasets/..%2F..%2Fetc/metadata", None, 404, ""),
    ("get", "static/..%2Fapp.py", None, 404, ""),
    ("get", "datasets/mrms_idw/edr/position?coords=POINT(-98.5 95)", None, 400, "latitude"),
    ("get", "datasets/mrms_idw/edr/position?coords=POINT(-80 30.5)", None, 404, "outside the store's grid"),
    ("get", "datasets/mrms_idw/edr/position?coords=POINT(nan 30.5)", None, 400, "NaN or infinite"),
    ("get", "datasets/mrms_idw/edr/position?coords=POINT(inf 30.5)", None, 400, "NaN or infinite"),
    ("get", "datasets/mrms_idw/edr/position?coords=POINT(-98.5", None, 400, "WKT"),
    ("get", "datasets/mrms_idw/edr/position", None, 400, "coords is required"),
    ("get", f"datasets/mrms_idw/edr/position?coords={POINT}&datetime=2020-01-01T00:00Z", None, 404, "holds"),
    ("get", f"datasets/mrms_idw/edr/position?coords={POINT}&datetime=yesterday", None, 400, "ISO 8601"),
    (
        "get",
        f"datasets/mrms_idw/edr/position?coords={POINT}&parameter-name=rain",
        None,
        400,
        "unknown variable",
    ),
    ("get", f"datasets/mrms_idw/edr/position?coords={POINT}&crs=EPSG:999999", None, 400, "crs"),
    (
        "get",
        "datasets/mrms_idw/edr/area?coords=POLYGON((-100 29, -97 29, -97 32, -100 32, -100 29))",
        None,
        413,
        "limit",
    ),
    ("get", f"datasets/mrms_idw/edr/area?coords={POINT}", None, 400, "POLYGON"),
    ("get", "datasets/mrms_idw/map/rain.png", None, 400, "unknown layer"),
    ("get", "datasets/mrms_idw/map/exceedance.png?threshold=3", None, 400, "thresholds"),
    ("get", "datasets/mrms_idw/map/mean.png?time=2030-01-01T00:00Z", None, 404, "holds"),
    ("get", "datasets/mrms_idw/map/mean.png?time=yesterday", None, 400, "time: cannot read 'yesterday'"),
    ("post", "fill", b'{"model": "idw", "observations": NaN}', 400, "finite"),
    ("post", "fill", b'{"model": "idw", ', 400, "not valid JSON"),
    ("post", "fill", {"model": "idw", "observations": {"type": "Feature"}, "target": None}, 400, "GeoJSON"),
    ("post", "fill", {"model": "idw", "observations": _gauges(3)}, 400, "target"),
    (
        "post",
        "fill",
        {
            "model": "idw",
            "observations": _gauges(3),
            "target": {"type": "MultiPoint", "coordinates": [[-200, 30]]},
        },
        400,
        "longitude in [-180, 360]",
    ),
    (
        "get",
        "datasets/mrms_idw/edr/position?coords=POINT(-200 30.5)",
        None,
        400,
        "longitude in [-180, 360]",
    ),
    (
        "post",
        "fill",
        {
            "model": "idw",
            "observations": _gauges(3),
            "target": {"type": "Grid", "x": [-200, -199], "y": [30, 31]},
        },
        400,
        "a geographic grid needs longitude in [-180, 360]",
    ),
    (
        "post",
        "fill",
        {"model": "rainbow", "observations": _gauges(3), "target": _gauges(1)},
        400,
        "unknown model",
    ),
    (
        "post",
        "fill",
        {"observations": {"type": "FeatureCollection", "features": [{"geometry": {}}]}},
        400,
        "Point",
    ),
    (
        "post",
        "fill",
        {
            "model": "idw",
            "observations": _gauges(3),
            "target": {"type": "Grid", "x": list(range(600)), "y": list(range(600))},
        },
        413,
        "weatherunc run",
    ),
    ("post", "fill", b"[" + b"0," * 5_000_000 + b"0]", 413, "weatherunc run"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_clear_json_refusal(
    client: httpx.Client, method: str, path: str, body, status: int, message: str
) -> None:
    if method == "get":
        response = client.get(path)
    elif isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    if "/map/" in path and "time=" in path:  # a map's time is its query parameter `time`, not `datetime`
        assert response.json()["detail"].startswith("time:")


def _python_blocks(page: str) -> list[str]:
    text = (Path(__file__).resolve().parent.parent / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_documented_python_examples_run_against_a_server(served) -> None:
    """The Python examples of docs/service.md and README.md, run against the test's server (its
    address and store name in place of the documented ones)."""
    requests = pytest.importorskip("requests", reason="the documented examples use requests")

    def localised(block: str) -> str:
        return block.replace("http://127.0.0.1:8000/", served[0]).replace("knmi_anp", "mrms_idw")

    (fill_example,) = _python_blocks("docs/service.md")
    namespace: dict = {}
    exec(compile(localised(fill_example), "docs/service.md", "exec"), namespace)
    answer = namespace["answer"]
    assert answer.status_code == 200, answer.text
    assert np.asarray(answer.json()["variables"]["precipitation_std"], dtype=float).shape == (3, 4)
    (readme_example,) = [block for block in _python_blocks("README.md") if "open_zarr" in block]
    namespace.update(xarray=xr, requests=requests)
    exec(compile(localised(readme_example), "README.md", "exec"), namespace)
    assert namespace["filled"].status_code == 200, namespace["filled"].text
    remote = namespace["store"]
    np.testing.assert_allclose(
        remote[conventions.PRECIPITATION_MEAN].values,
        served[1][conventions.PRECIPITATION_MEAN].values,
        equal_nan=True,
    )


def test_importing_the_command_line_loads_no_service_library() -> None:
    modules = "('xpublish', 'fastapi', 'uvicorn')"
    code = f"import sys, weatherunc.cli; print(sorted(m for m in {modules} if m in sys.modules))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )


def test_a_staging_folder_named_directly_is_refused(served) -> None:
    staged = Path(served[2]) / "staged" / "prediction.zarr.partial"
    result = subprocess.run(
        [sys.executable, "-m", "weatherunc.cli", "serve", str(staged)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "still being written" in result.stderr
