"""The web monitor (``celeriac -A proj monitor``): an optional extra, ``celeriac[monitor]``.

Events feed the cluster model and an SQLite task history (:mod:`celeriac.web.monitor`); an
ASGI app (:mod:`celeriac.web.server`) serves Flower's HTTP API, Prometheus metrics and
server-rendered pages with live updates over server-sent events. Starlette, uvicorn and
Jinja2 are imported only inside this package, so ``import celeriac`` works without them.
"""
