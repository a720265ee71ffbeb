"""The shared data folder of a checkout: ``$WEATHERUNC_DATA_DIR``, else ``shared/data`` beside it.

The tests and the notebooks find the radar archives and the Natural Earth coastlines in the same
way. A folder counts only when it holds ``MANIFEST.md`` (the shared folder's index), so a data
root of other files set in the environment is left to the catalog and never taken for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from weatherunc.catalog import DATA_DIR_ENVIRONMENT_VARIABLE

#: The file that marks a folder as the shared data folder.
MANIFEST = "MANIFEST.md"
#: Natural Earth shapefiles for cartopy, relative to the shared data folder.
NATURAL_EARTH = Path("natural_earth") / "cartopy_data"


def shared_data_dir(checkout: Path) -> Path | None:
    """``$WEATHERUNC_DATA_DIR``, else ``shared/data`` beside the repository folder ``checkout``:
    the first of them that holds :data:`MANIFEST`, or None."""
    candidates = [os.environ.get(DATA_DIR_ENVIRONMENT_VARIABLE), Path(checkout).parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / MANIFEST).is_file():
            return Path(candidate).resolve()
    return None


def use_shared_data(checkout: Path) -> Path | None:
    """Find the shared data folder with :func:`shared_data_dir` and point the environment at it:
    ``WEATHERUNC_DATA_DIR`` (the catalog's data root) and ``CARTOPY_DATA_DIR`` (coastlines for the
    maps), each only where it is not set already. Returns the folder, or None when there is none
    (then the environment is left as it is)."""
    root = shared_data_dir(checkout)
    if root is None:
        return None
    os.environ.setdefault(DATA_DIR_ENVIRONMENT_VARIABLE, str(root))
    if (root / NATURAL_EARTH).is_dir():
        os.environ.setdefault("CARTOPY_DATA_DIR", str(root / NATURAL_EARTH))
    return root
