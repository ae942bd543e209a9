"""The admin listener's endpoints: health, readiness and metrics (loopback by default).

The admin listener is a second engine server whose routes are all local endpoints; it is never
the public port, so probes and scrapes never compete with, or leak into, API traffic.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from bastion.admin.metrics import CONTENT_TYPE, render
from bastion.config.models import BastionConfig
from bastion.observability.traffic import TrafficSnapshot
from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route
from bastion.version import __version__

_JSON = (("content-type", "application/json"), ("cache-control", "no-store"))


def endpoints(
    config: BastionConfig,
    snapshot: Callable[[], TrafficSnapshot],
    ready: Callable[[], bool],
) -> list[Route]:
    """The admin routes. ``ready`` is false while starting and once shutdown has begun."""

    async def healthz(request: Request) -> Response:
        return Response(200, _JSON, orjson.dumps({"status": "ok", "version": __version__}))

    async def readyz(request: Request) -> Response:
        if ready():
            return Response(200, _JSON, orjson.dumps({"status": "ready"}))
        return Response(503, _JSON, orjson.dumps({"status": "not ready"}))

    async def metrics(request: Request) -> Response:
        return Response(200, (("content-type", CONTENT_TYPE),), render(snapshot))

    return [
        Route(name="admin.healthz", path_prefix="/healthz", endpoint=FunctionEndpoint(healthz)),
        Route(name="admin.readyz", path_prefix="/readyz", endpoint=FunctionEndpoint(readyz)),
        Route(name="admin.metrics", path_prefix="/metrics", endpoint=FunctionEndpoint(metrics)),
    ]
