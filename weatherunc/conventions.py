"""CF names, units and attributes: the one place that knows them.

Every dataset weatherunc produces or consumes carries ``precipitation`` as a rate in
millimetres per hour, ``NaN`` where nothing was observed, a CF grid mapping variable
named ``crs`` and 2-D ``latitude``/``longitude`` coordinates.

Reference: CF Conventions 1.10, sections 3 (units, standard names), 4 (coordinates) and
5.6 (grid mappings), https://cfconventions.org/.
"""

from __future__ import annotations

from typing import Final

CF_CONVENTIONS: Final = "CF-1.10"

PRECIPITATION: Final = "precipitation"
PRECIPITATION_UNITS: Final = "mm h-1"
PRECIPITATION_ATTRS: Final[dict[str, str]] = {
    "standard_name": "lwe_precipitation_rate",
    "long_name": "precipitation rate (liquid water equivalent)",
    "units": PRECIPITATION_UNITS,
    "grid_mapping": "crs",
}
#: Largest precipitation rate accepted as physically plausible [mm/h]. The world record
#: one-minute intensity is about 31 mm/min; radar composites do not exceed a few hundred.
MAXIMUM_RATE_MM_PER_HOUR: Final = 500.0

#: Fill values that producers use without declaring them; their presence in a decoded
#: field means a missing ``_FillValue`` attribute, not rain.
UNDECLARED_FILL_VALUES: Final[tuple[float, ...]] = (-9999.0, -999.0, -32768.0, 65535.0, 9.969209968386869e36)

TIME: Final = "time"
Y: Final = "y"
X: Final = "x"
STATION: Final = "station"
LATITUDE: Final = "latitude"
LONGITUDE: Final = "longitude"
CRS_VARIABLE: Final = "crs"

#: Dimension names accepted in incoming files, mapped to weatherunc's names.
DIMENSION_ALIASES: Final[dict[str, str]] = {
    "time": TIME,
    "t": TIME,
    "y": Y,
    "lat": Y,
    "latitude": Y,
    "rlat": Y,
    "x": X,
    "lon": X,
    "longitude": X,
    "rlon": X,
}

PROJECTED_X_ATTRS: Final = {
    "standard_name": "projection_x_coordinate",
    "long_name": "x coordinate of projection",
    "units": "m",
    "axis": "X",
}
PROJECTED_Y_ATTRS: Final = {
    "standard_name": "projection_y_coordinate",
    "long_name": "y coordinate of projection",
    "units": "m",
    "axis": "Y",
}
GEOGRAPHIC_X_ATTRS: Final = {
    "long_name": "longitude of grid cell centre",
    "units": "degrees_east",
    "axis": "X",
}
GEOGRAPHIC_Y_ATTRS: Final = {
    "long_name": "latitude of grid cell centre",
    "units": "degrees_north",
    "axis": "Y",
}
LATITUDE_ATTRS: Final = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}
LONGITUDE_ATTRS: Final = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}
TIME_ATTRS: Final = {"standard_name": "time", "long_name": "end of observation period", "axis": "T"}

#: Native units a catalog entry may declare, and what they measure.
RATE_UNITS: Final = frozenset({"mm h-1", "mm/h", "mm hr-1", "kg m-2 h-1"})
#: Rate units accepted in a user's own field (:func:`weatherunc.fill`) and their factor to mm/h;
#: a mass flux of water is its liquid water equivalent (1 kg m-2 = 1 mm).
RATE_UNIT_FACTORS: Final[dict[str, float]] = {
    **{units: 1.0 for units in ("mm h-1", "mm/h", "mm hr-1", "mm/hr", "mm h**-1", "kg m-2 h-1")},
    **{units: 3600.0 for units in ("mm s-1", "mm/s", "kg m-2 s-1", "kg m**-2 s**-1")},
    **{units: 1.0 / 24.0 for units in ("mm d-1", "mm/d", "mm day-1", "mm/day", "kg m-2 d-1")},
    "m s-1": 3.6e6,
}
ACCUMULATION_UNITS: Final[dict[str, float]] = {"mm": 1.0, "kg m-2": 1.0, "0.1 mm": 0.1}
REFLECTIVITY_UNITS: Final = frozenset({"dBZ"})
KNOWN_UNITS: Final = RATE_UNITS | frozenset(ACCUMULATION_UNITS) | REFLECTIVITY_UNITS

# Prediction outputs: the variables every model's prediction carries (``weatherunc.models``),
# and the optional ones that bin heads, ensembles and gridded fills add.
PRECIPITATION_MEAN: Final = "precipitation_mean"
PRECIPITATION_STD: Final = "precipitation_std"
PRECIPITATION_QUANTILE: Final = "precipitation_quantile"
EXCEEDANCE_PROBABILITY: Final = "exceedance_probability"
TRANSFORMED_MEAN: Final = "transformed_mean"
TRANSFORMED_STD: Final = "transformed_std"
LATENT_VARIANCE: Final = "latent_variance"
NOISE_VARIANCE: Final = "noise_variance"
TRANSFORM_OFFSET: Final = "transform_offset"
BIN_PROBABILITY: Final = "bin_probability"
BIN_LOWER: Final = "bin_lower"
BIN_UPPER: Final = "bin_upper"
MUTUAL_INFORMATION: Final = "mutual_information"
RAIN_PROBABILITY: Final = "rain_probability"
EPISTEMIC_SHARE: Final = "epistemic_share"
PREDICTIVE_ENTROPY: Final = "predictive_entropy"
#: Per-pixel flag of a gridded prediction (:func:`weatherunc.fill` and the batch jobs' stores alike).
OBSERVATION: Final = "observation"
#: Its values: unobserved and predicted; observed; unobserved and left NaN (no observation within
#: reach); observed but hidden from the model (a batch job's verification targets, predicted where
#: a tile reaches them).
FILLED, OBSERVED, UNFILLED, WITHHELD = 0, 1, 2, 3
OBSERVATION_FLAG_MEANINGS: Final = "filled observed unfilled withheld"
#: Dimensions of the prediction outputs besides the target (or ``y``, ``x``) dimensions.
QUANTILE: Final = "quantile"
THRESHOLD: Final = "threshold"
BIN: Final = "bin"
#: Lower edges [mm/h] of the rain-rate bins of the categorical heads; the last bin is open above.
DEFAULT_BIN_EDGES: Final[tuple[float, ...]] = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
