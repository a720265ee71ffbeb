"""Start the service: find the stores, build the application and run it with uvicorn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from weatherunc.service.settings import ServiceLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    paths: Sequence[Path | str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    limits: ServiceLimits | None = None,
) -> None:
    """Serve the complete prediction stores that ``paths`` name (stores or folders holding them) until
    interrupted. Binds to the loopback interface unless ``host`` says otherwise.

    Two process-wide settings are made here, as the service owns its process: matplotlib draws
    without a display (Agg), and zarr writes chunks that hold only the fill value, because
    xpublish-zarr encodes each requested chunk through a scratch zarr array and answers 500 when
    zarr skips writing an all-NaN chunk (``array.write_empty_chunks``).
    """
    import matplotlib
    import uvicorn
    import zarr

    from weatherunc.service.app import create_app
    from weatherunc.service.stores import discover_stores

    matplotlib.use("Agg")
    zarr.config.set({"array.write_empty_chunks": True})
    stores = discover_stores(paths)
    application = create_app(stores, limits)
    print(f"serving {len(stores)} store(s) ({', '.join(stores)}) at http://{host}:{port}/", flush=True)
    uvicorn.run(
        application, host=host, port=port, log_level="warning", timeout_keep_alive=5, limit_concurrency=256
    )
