"""Native quantities to mm/h, checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from weatherunc.units import ZRRelation, rate_factor_to_mm_per_hour, to_rate_mm_per_hour


def test_accumulation_over_period() -> None:
    np.testing.assert_allclose(
        to_rate_mm_per_hour(np.array([0.5, np.nan]), units="mm", accumulation_minutes=5), [6.0, np.nan]
    )
    np.testing.assert_allclose(
        to_rate_mm_per_hour(np.array([240.0]), units="0.1 mm", accumulation_minutes=1440), [1.0]
    )
    np.testing.assert_allclose(
        to_rate_mm_per_hour(np.array([1.0]), units="kg m-2", accumulation_minutes=6), [10.0]
    )


def test_rates_pass_through() -> None:
    np.testing.assert_array_equal(to_rate_mm_per_hour(np.array([3.5]), units="mm/h"), [3.5])


def test_marshall_palmer() -> None:
    # Z = 200 R^1.6: R = 1 mm/h gives Z = 200, i.e. 23.01 dBZ; R = 10 mm/h gives 39.01 dBZ (10 log10(200
    # * 10^1.6)).
    dbz = 10 * np.log10(200.0 * np.array([1.0, 10.0]) ** 1.6)
    np.testing.assert_allclose(ZRRelation().rate_from_dbz(dbz), [1.0, 10.0], rtol=1e-12)


def test_no_echo_is_dry_and_nan_stays_nan() -> None:
    rate = to_rate_mm_per_hour(
        np.array([-32.0, np.nan, 30.0]), units="dBZ", zr_relation=ZRRelation(223.0, 1.53), no_echo_dbz=-32.0
    )
    assert rate[0] == 0.0 and np.isnan(rate[1])
    assert rate[2] == pytest.approx((1000.0 / 223.0) ** (1 / 1.53))


@pytest.mark.parametrize(
    ("units", "message"), [("mm", "accumulation_minutes"), ("dBZ", "Z-R"), ("inch", "unknown units")]
)
def test_missing_parameters(units: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_rate_mm_per_hour(np.array([1.0]), units=units)


@pytest.mark.parametrize(
    ("units", "factor"),
    [("mm h-1", 1.0), ("mm/h", 1.0), ("kg m-2 s-1", 3600.0), ("mm  day-1", 1 / 24), ("m s-1", 3.6e6)],
)
def test_rate_factors(units: str, factor: float) -> None:
    assert rate_factor_to_mm_per_hour(units) == pytest.approx(factor)


@pytest.mark.parametrize(
    ("units", "reason"), [("mm", "accumulation"), ("dBZ", "reflectivity"), ("K", "not a known")]
)
def test_rate_factor_refuses_what_is_not_a_rate(units: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        rate_factor_to_mm_per_hour(units)
