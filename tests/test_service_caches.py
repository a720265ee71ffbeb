"""The service's memory: decoded chunks, drawn maps, opened stores and the fast path that answers
from them; bounded, decoded once, and never stale after a store is rewritten on disk."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.service_support import make_job_store
from weatherunc import conventions

pytest.importorskip("xpublish", reason="the service extra is not installed")
from weatherunc.service import fast_path, maps  # noqa: E402 - after the skip
from weatherunc.service.app import ServiceState, create_app  # noqa: E402
from weatherunc.service.chunks import ChunkCache, ChunkMiss  # noqa: E402
from weatherunc.service.settings import RequestError, ServiceLimits  # noqa: E402
from weatherunc.service.stores import open_served_store, store_version  # noqa: E402

MEAN = conventions.PRECIPITATION_MEAN


@pytest.fixture(scope="module")
def job_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_job_store(tmp_path_factory.mktemp("caches"))


@pytest.fixture
def store_copy(job_store: Path, tmp_path: Path) -> Path:
    """A copy of the job store this test may rewrite."""
    copy = tmp_path / "run" / "prediction.zarr"
    shutil.copytree(job_store, copy)
    return copy


def _point(store_path: Path, time_index: int = 0) -> dict[str, str]:
    local = xr.open_zarr(store_path, consolidated=False)
    return {
        "coords": f"POINT({float(local.x[10])} {float(local.y[20])})",
        "datetime": str(np.datetime_as_string(local.time.values[time_index], unit="s")) + "Z",
        "parameter-name": MEAN,
    }


def _mean_at(answer: dict) -> float:
    return answer["ranges"][MEAN]["values"][0]


def test_chunk_cache_answers_from_memory_and_stays_within_its_budget(job_store: Path) -> None:
    store = open_served_store(job_store, "run")
    local = xr.open_zarr(job_store, consolidated=False)[MEAN].values
    probe = ChunkCache(1 << 30)
    probe.values_at(store, MEAN, 0, 0, 0)
    chunk_bytes = probe.nbytes
    cache = ChunkCache(chunk_bytes)  # room for one chunk
    assert cache.values_at(store, MEAN, 0, 3, 5) == pytest.approx(local[0, 3, 5], nan_ok=True)
    assert cache.values_at(store, MEAN, 0, 4, 6, loading=False) == pytest.approx(local[0, 4, 6], nan_ok=True)
    assert cache.values_at(store, MEAN, 1, 3, 5) == pytest.approx(local[1, 3, 5], nan_ok=True)
    assert len(cache) == 1 and cache.nbytes <= chunk_bytes
    with pytest.raises(ChunkMiss):
        cache.values_at(store, MEAN, 0, 3, 5, loading=False)  # evicted by the later frame
    series = cache.pixel_series(store, [MEAN], np.array([0, 1]), 3, 5)
    np.testing.assert_allclose(series[MEAN][1], local[:, 3, 5], equal_nan=True)
    assert series[MEAN][0] == (conventions.TIME,)


def test_a_chunk_wanted_by_many_threads_at_once_is_decoded_once(job_store: Path, monkeypatch) -> None:
    store = open_served_store(job_store, "run")
    cache = ChunkCache(1 << 30)
    decoded = []
    decode = ChunkCache._decode

    def slow_decode(*arguments):
        decoded.append(arguments)
        time.sleep(0.3)
        return decode(*arguments)

    monkeypatch.setattr(cache, "_decode", slow_decode)
    start = threading.Barrier(8)

    def read(column: int) -> float:
        start.wait()
        return float(cache.values_at(store, MEAN, 0, 7, column))

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(read, range(8)))
    assert len(decoded) == 1 and len(values) == 8


def test_a_rewritten_store_is_opened_anew_and_not_answered_from_memory(store_copy: Path) -> None:
    state = ServiceState(stores={"run": open_served_store(store_copy, "run")}, limits=ServiceLimits())
    query = _point(store_copy)
    before = _mean_at(fast_path.position_answer(state, "run", query))
    assert _mean_at(fast_path.position_answer(state, "run", query, loading=False)) == before  # from memory
    old_version, old_times = state.store("run").version, state.metadata("run")["times"]
    # A job replaces its store as weatherunc.store does: a new folder renamed into place.
    rewritten = store_copy.with_name("prediction.zarr.new")
    shutil.copytree(store_copy, rewritten)
    import zarr

    array = zarr.open_array(rewritten / MEAN, mode="r+")
    array[...] = np.full(array.shape, 7.0, dtype=array.dtype)
    os.rename(store_copy, store_copy.with_name("prediction.zarr.old"))
    os.rename(rewritten, store_copy)
    assert store_version(store_copy) != old_version
    with pytest.raises(ChunkMiss):  # the new version's chunks are not in memory yet
        fast_path.position_answer(state, "run", query, loading=False)
    assert _mean_at(fast_path.position_answer(state, "run", query)) == pytest.approx(7.0) != before
    assert (
        state.store("run").version == store_version(store_copy)
        and state.metadata("run")["times"] == old_times
    )
    assert state.published("run").attrs["_xpublish_id"] == f"run@{store_version(store_copy)}"


@pytest.mark.filterwarnings("ignore:Object at zarr.json.unfinished")
def test_a_store_being_rewritten_is_refused_with_503(store_copy: Path) -> None:
    state = ServiceState(stores={"run": open_served_store(store_copy, "run")}, limits=ServiceLimits())
    query = _point(store_copy)
    fast_path.position_answer(state, "run", query)
    os.rename(store_copy / "zarr.json", store_copy / "zarr.json.unfinished")  # as a staged store
    with pytest.raises(RequestError) as refused:
        fast_path.position_answer(state, "run", query)
    assert refused.value.status == 503 and "being rewritten" in refused.value.message
    shutil.copy(store_copy / "zarr.json.unfinished", store_copy / "zarr.json")
    assert fast_path.position_answer(state, "run", query)["type"] == "Coverage"


def _fake_map(number: int) -> maps.RenderedMap:
    return maps.RenderedMap(
        png=b"\x89PNG fake %d" % number, width=10, height=8, axes_box=(1, 1, 9, 7), extent=(0, 1, 0, 1)
    )


def _finished(rendered: maps.RenderedMap) -> Future:
    future: Future = Future()
    future.set_result(rendered)
    return future


def test_a_map_asked_for_while_it_is_drawn_is_drawn_once(job_store: Path, monkeypatch) -> None:
    store = open_served_store(job_store, "run")
    renderer = maps.MapRenderer(entries=4)
    drawings = []

    def draw(store, time_index, layer, threshold):
        drawings.append(Future())
        return drawings[-1]

    monkeypatch.setattr(renderer, "_start_drawing", draw)
    first, second = renderer.submit(store, 0, "mean", None), renderer.submit(store, 0, "mean", None)
    assert first is second and len(drawings) == 1 and renderer.cached(store, 0, "mean", None) is None
    drawings[0].set_result(_fake_map(1))
    assert (
        renderer.cached(store, 0, "mean", None) is first.result()
        and renderer.submit(store, 0, "mean", None).done()
    )
    failed = renderer.submit(store, 1, "mean", None)
    drawings[-1].set_exception(RuntimeError("drawing failed"))
    assert (
        failed.exception() is not None and renderer.submit(store, 1, "mean", None) is not failed
    )  # drawn again


def test_map_cache_keeps_the_last_maps_by_store_version(job_store: Path, monkeypatch) -> None:
    store = open_served_store(job_store, "run")
    renderer = maps.MapRenderer(entries=2)
    drawn = []

    def draw(store, time_index, layer, threshold):
        drawn.append((store.version, time_index, layer))
        return _finished(_fake_map(len(drawn)))

    monkeypatch.setattr(renderer, "_start_drawing", draw)
    first = renderer.render(store, 0, "mean", None)
    assert (
        renderer.render(store, 0, "mean", None) is first and renderer.cached(store, 0, "mean", None) is first
    )
    renderer.render(store, 1, "mean", None)
    renderer.render(store, 0, "std", None)
    assert len(renderer) == 2 and renderer.cached(store, 0, "mean", None) is None  # least recently used
    assert len(drawn) == 3
    rewritten = dataclasses.replace(store, version="rewritten")
    assert renderer.cached(rewritten, 0, "std", None) is None
    assert renderer.render(rewritten, 0, "std", None).png != renderer.cached(store, 0, "std", None).png


def test_the_drawing_process_keeps_stores_open_by_version(job_store: Path) -> None:
    opened = maps.opened_store(str(job_store), "run", "a")
    assert maps.opened_store(str(job_store), "run", "a") is opened
    assert maps.opened_store(str(job_store), "run", "b") is not opened
    for number in range(maps.OPEN_STORES + 1):
        maps.opened_store(str(job_store), "run", f"v{number}")
    assert len(maps._opened) == maps.OPEN_STORES


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_fast_path_answers_from_memory_as_the_routes_do(job_store: Path, monkeypatch) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setattr(maps.MapRenderer, "start", lambda self: None)
    monkeypatch.setattr(maps.MapRenderer, "_start_drawing", lambda self, *arguments: _finished(_fake_map(1)))
    answered = []
    original = fast_path.position_answer

    def spy(state, dataset_id, parameters, *, loading=True):
        try:
            answer = original(state, dataset_id, parameters, loading=loading)
        except ChunkMiss:
            answered.append("handed on")
            raise
        answered.append("from memory")
        return answer

    monkeypatch.setattr(fast_path, "position_answer", spy)
    app = create_app({"run": open_served_store(job_store, "run")})
    with TestClient(app) as client:
        query = _point(job_store, time_index=1)
        first = client.get("/datasets/run/edr/position", params=query)
        again = client.get("/datasets/run/edr/position", params=query)
        assert answered == ["handed on", "from memory"]
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        refused = client.get("/datasets/run/edr/position", params={"coords": "POINT(1000 1000)"})
        assert refused.status_code == 400 and "longitude" in refused.json()["detail"]
        drawn = client.get("/datasets/run/map/mean.png")
        cached = client.get("/datasets/run/map/mean.png")
        assert drawn.content == cached.content == _fake_map(1).png
        assert cached.headers["content-type"] == "image/png" and "max-age" in cached.headers["cache-control"]
        assert client.get("/datasets/run/map/mean.png", params={"threshold": "x"}).status_code == 422
        assert client.get("/datasets/run/map/bogus.png").status_code == 400


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_the_drawing_process_ends_when_the_service_is_killed(tmp_path: Path) -> None:
    """A service killed (SIGKILL: nothing of it runs again) leaves no drawing process behind."""
    script = (
        "import multiprocessing, sys, time\n"
        "from weatherunc.service.maps import MapRenderer\n"
        "renderer = MapRenderer(entries=1)\n"
        "renderer.start()\n"
        "renderer._drawer.submit(int, 0).result()\n"  # the drawing process is up
        "print([child.pid for child in multiprocessing.active_children()], flush=True)\n"
        "time.sleep(600)\n"
    )
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        drawing = json.loads(service.stdout.readline())
        assert len(drawing) == 1 and _running(drawing[0])
    finally:
        service.kill()
        service.wait()
    deadline = time.monotonic() + 20 * maps.SERVICE_CHECK_S + 10
    while _running(drawing[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(drawing[0]), "the drawing process outlived the killed service"


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_fill_that_timed_out_holds_its_place_until_it_ends(monkeypatch) -> None:
    """A fill answered 503 after its timeout still runs in the worker: it keeps its place, so that
    at most two fills wait or run at once, and gives it back when it ends; a queued fill whose
    request timed out never runs."""
    from starlette.testclient import TestClient

    from weatherunc.service import app as service_app

    release, started = threading.Event(), []

    def slow_fill(parsed, limits):
        started.append(parsed["number"])
        release.wait(30)
        return {"filled": parsed["number"]}

    monkeypatch.setattr(service_app, "fill_request", slow_fill)
    application = create_app({}, ServiceLimits(fill_timeout_s=1.0))
    with TestClient(application) as client:
        running = client.post("/fill", json={"number": 1})
        assert running.status_code == 503 and "longer than 1 s" in running.json()["detail"]
        answers = {}
        waiting = threading.Thread(
            target=lambda: answers.update(queued=client.post("/fill", json={"number": 2}))
        )
        waiting.start()
        time.sleep(0.3)  # fill 2 waits behind fill 1, which still runs: both places are taken
        busy = client.post("/fill", json={"number": 3})
        assert busy.status_code == 503 and "busy" in busy.json()["detail"]
        waiting.join()
        assert answers["queued"].status_code == 503
        release.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = client.post("/fill", json={"number": 4})
            if answer.status_code == 200:
                break
            time.sleep(0.05)
        assert answer.status_code == 200 and answer.json() == {"filled": 4}
    assert started == [1, 4]  # the queued fill was cancelled before it ran
