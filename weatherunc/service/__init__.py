"""``weatherunc serve``: prediction stores as a web service, and a map page.

The service is an `xpublish <https://xpublish.readthedocs.io>`_ application: each complete
prediction store it was started with is one xpublish dataset, served lazily and read-only,
with its CF names, units and grid mapping. Besides xpublish's own routes (``/datasets``,
``/datasets/{name}/info``) and the zarr v3 endpoint of ``xpublish-zarr``
(``/datasets/{name}/zarr``), the service adds

- OGC API - Environmental Data Retrieval position and area queries
  (``/datasets/{name}/edr/position``, ``/datasets/{name}/edr/area``; :mod:`weatherunc.service.queries`),
- per-store metadata (``/datasets/{name}/metadata``; :mod:`weatherunc.service.stores`),
- cached PNG maps per store, time and layer (``/datasets/{name}/map/...``; :mod:`weatherunc.service.maps`),
- on-demand filling of posted observations (``POST /fill``; :mod:`weatherunc.service.fill_requests`),
- a map page at ``/`` (``weatherunc/service/static``).

Nothing here is imported by ``import weatherunc``; xpublish, FastAPI and uvicorn are imported only
by :mod:`weatherunc.service.app` and :mod:`weatherunc.service.server` (the ``service`` extra).
"""
