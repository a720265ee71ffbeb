"""The map page of ``weatherunc serve`` in a real headless browser (Debian's chromium via Playwright).

Skips when Playwright's Python package or a chromium executable is missing (``.ci/run`` installs
chromium with apt where it can).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import xarray as xr

from tests.service_support import make_job_store
from weatherunc import conventions

pytest.importorskip("xpublish", reason="the service extra is not installed")
from weatherunc.service.server import background_service  # noqa: E402 - after the skip

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed"
)

#: Where Debian's chromium package puts the browser; ``$WEATHERUNC_CHROMIUM`` overrides it.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _chromium() -> str | None:
    override = os.environ.get("WEATHERUNC_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    found = [path for path in CHROMIUM_CANDIDATES if Path(path).exists()]
    return found[0] if found else shutil.which("chromium")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium) for the map page test"
)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("page")
    store = make_job_store(root)
    with background_service([store], log=root / "serve.log") as service:
        yield service.url, xr.open_zarr(store, consolidated=False).load()


def _inner_withheld_pixel(local: xr.Dataset, time_index: int) -> tuple[int, int]:
    """A pixel withheld at ``time_index`` whose eight neighbours are withheld too (a click lands inside)."""
    withheld = local[conventions.OBSERVATION].values[time_index] == conventions.WITHHELD
    inner = withheld[1:-1, 1:-1].copy()
    for rows in (slice(0, -2), slice(1, -1), slice(2, None)):
        for columns in (slice(0, -2), slice(1, -1), slice(2, None)):
            inner &= withheld[rows, columns]
    rows, columns = inner.nonzero()
    return int(rows[0]) + 1, int(columns[0]) + 1


def test_pick_layer_and_time_then_click_a_pixel(page_url) -> None:
    url, local = page_url
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            timeout = 180_000  # the first maps are drawn on a busy machine
            page.wait_for_selector("#map[data-loaded='mrms_idw|2019-06-10T00:30:00Z|mean']", timeout=timeout)
            assert page.locator("#store option").all_inner_texts() == ["mrms_idw"]
            assert page.locator("#time option").count() == 2

            page.select_option("#layer", "exceedance")
            page.wait_for_selector("#map[data-loaded$='|exceedance']", timeout=timeout)
            assert page.locator("#threshold-label").is_visible()
            assert "threshold=1" in page.get_attribute("#map", "src")

            page.select_option("#time", "2019-06-10T00:50:00Z")
            page.wait_for_selector(
                "#map[data-loaded='mrms_idw|2019-06-10T00:50:00Z|exceedance']", timeout=timeout
            )
            assert "P(rate" in page.inner_text("#map-status") and "00:50" in page.inner_text("#map-status")

            # Click the centre of a pixel withheld from the model at 00:50, through the map's geometry.
            row, column = _inner_withheld_pixel(local, time_index=1)
            geometry = page.evaluate("() => state.geometry")
            left, top, right, bottom = geometry["axes_box"]
            x0, x1, y0, y1 = geometry["extent"]
            x, y = float(local.x[column]), float(local.y[row])
            box = page.locator("#map").bounding_box()
            scale = box["width"] / geometry["width"]
            page.mouse.click(
                box["x"] + scale * (left + (x - x0) / (x1 - x0) * (right - left)),
                box["y"] + scale * (top + (y1 - y) / (y1 - y0) * (bottom - top)),
            )
            page.wait_for_selector("#pixel-details:not([hidden])", timeout=60_000)
            assert page.inner_text("#pixel-where").startswith(f"row {row}, column {column}")
            assert page.inner_text("#pixel-status") == "withheld: filled by the model"
            assert page.locator("#pixel-quantiles tr").count() == 1 + local.sizes["quantile"]
            assert page.locator("#pixel-bins tr").count() == 1 + local.sizes["bin"]
            mean = float(local[conventions.PRECIPITATION_MEAN].values[1, row, column])
            shown = page.inner_text("#pixel-summary tr:has-text('predictive mean') td:last-child")
            assert float(shown.split()[0]) == pytest.approx(mean, rel=5e-3)
            assert not errors, errors
        finally:
            browser.close()
