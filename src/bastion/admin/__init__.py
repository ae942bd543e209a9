"""The admin listener's endpoints: health, readiness, metrics, the admin API and the dashboard.

The admin listener is a second engine server whose routes are all local endpoints; it is never
the public port, so probes and scrapes never compete with, or leak into, API traffic. Health,
readiness and metrics answer anyone who can reach it; ``/admin/...`` and ``/dashboard`` need an
admin token (see :mod:`bastion.admin.api`, :mod:`bastion.admin.dashboard`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from bastion.admin.metrics import CONTENT_TYPE, render
from bastion.config.models import BastionConfig
from bastion.observability.traffic import TrafficSnapshot
from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route
from bastion.version import __version__

if TYPE_CHECKING:
    from bastion.admin.plane import AdminPlane

_JSON = (("content-type", "application/json"), ("cache-control", "no-store"))


def endpoints(
    config: BastionConfig,
    snapshot: Callable[[], TrafficSnapshot],
    ready: Callable[[], bool],
    *,
    plane: AdminPlane | None = None,
) -> list[Route]:
    """The admin routes. ``ready`` is false while starting and once shutdown has begun.
    ``plane`` (the serving runtime's) adds the admin API and the dashboard."""

    async def healthz(request: Request) -> Response:
        return Response(200, _JSON, orjson.dumps({"status": "ok", "version": __version__}))

    async def readyz(request: Request) -> Response:
        if ready():
            return Response(200, _JSON, orjson.dumps({"status": "ready"}))
        return Response(503, _JSON, orjson.dumps({"status": "not ready"}))

    async def metrics(request: Request) -> Response:
        return Response(200, (("content-type", CONTENT_TYPE),), render(snapshot))

    routes = [
        Route(name="admin.healthz", path_prefix="/healthz", endpoint=FunctionEndpoint(healthz)),
        Route(name="admin.readyz", path_prefix="/readyz", endpoint=FunctionEndpoint(readyz)),
        Route(name="admin.metrics", path_prefix="/metrics", endpoint=FunctionEndpoint(metrics)),
    ]
    if plane is not None:
        routes.extend(control_routes(plane))
    return routes


def control_routes(plane: AdminPlane) -> list[Route]:
    """``/admin/...`` and ``/dashboard``, authenticated by admin tokens."""
    from bastion.admin import api, dashboard

    async def admin_api(request: Request) -> Response:
        return await api.handle(plane, request)

    async def dashboard_page(request: Request) -> Response:
        return await dashboard.handle(plane, request)

    return [
        Route(
            name="admin.api",
            path_prefix="/admin",
            endpoint=FunctionEndpoint(admin_api, requires_body=True),
        ),
        Route(
            name="admin.dashboard",
            path_prefix="/dashboard",
            endpoint=FunctionEndpoint(dashboard_page, requires_body=True),
        ),
    ]
