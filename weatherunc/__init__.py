"""weatherunc: fill the unobserved parts of precipitation maps and say how sure each value is.

The public entry points are imported on first use, so ``import weatherunc`` does no work:

- :func:`weatherunc.fill` -- fill the NaN pixels of one's own ``xr.DataArray`` of rain rate, with
  uncertainty (also ``data.weatherunc.fill()``: the accessor registers itself once xarray is imported);
- :func:`weatherunc.open_dataset` -- a catalog entry as a lazy CF ``xr.Dataset`` [mm/h];
- :func:`weatherunc.open_store` -- a complete zarr store written by the ingest;
- :class:`weatherunc.Catalog` and :class:`weatherunc.InputDataError`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from weatherunc.accessor import register_when_xarray_is_imported
from weatherunc.version import __version__ as __version__

_PUBLIC = {
    "fill": "weatherunc.filling",
    "open_dataset": "weatherunc.loading",
    "open_store": "weatherunc.store",
    "Catalog": "weatherunc.catalog",
    "InputDataError": "weatherunc.errors",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'weatherunc' has no attribute {name!r}")


__all__ = sorted(_PUBLIC)

register_when_xarray_is_imported()
