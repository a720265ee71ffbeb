"""The ``weatherunc`` accessor on ``xr.DataArray``: ``data.weatherunc.fill(...)``.

The accessor is registered with ``xr.register_dataarray_accessor`` as soon as xarray is imported,
so that ``import weatherunc`` itself imports nothing heavy: at once when xarray already is, else
by a one-shot import hook that registers it right after xarray's own import and removes itself.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyproj
    import xarray as xr

    from weatherunc.models.registry import Interpolator
    from weatherunc.tiling import GridTiling

ACCESSOR_NAME = "weatherunc"


class WeatherUncAccessor:
    """``data.weatherunc``: weatherunc's methods on a DataArray of precipitation rate."""

    def __init__(self, data: xr.DataArray) -> None:
        self._data = data

    def fill(
        self,
        *,
        model: str | Interpolator = "gp",
        crs: pyproj.CRS | str | int | None = None,
        tiling: GridTiling | None = None,
        units: str | None = None,
        share_fit: bool = True,
        progress: bool = True,
    ) -> xr.Dataset:
        """Fill the NaN pixels of this DataArray: :func:`weatherunc.filling.fill` on it."""
        from weatherunc.filling import fill

        return fill(
            self._data,
            model=model,
            crs=crs,
            tiling=tiling,
            units=units,
            share_fit=share_fit,
            progress=progress,
        )


def register() -> None:
    """Register :class:`WeatherUncAccessor` as ``xr.DataArray.weatherunc``."""
    import xarray as xr

    xr.register_dataarray_accessor(ACCESSOR_NAME)(WeatherUncAccessor)


class _RegisterAfterXarray(MetaPathFinder):
    """Finds nothing itself: wraps xarray's loader so that :func:`register` runs after xarray loads."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "xarray":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> Any:
            try:
                execute(module)
            finally:
                del loader.exec_module  # back to the loader's own method
            register()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_when_xarray_is_imported() -> None:
    """Register the accessor now if xarray is imported, else right after it is."""
    if "xarray" in sys.modules:
        register()
    elif not any(isinstance(finder, _RegisterAfterXarray) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterXarray())
