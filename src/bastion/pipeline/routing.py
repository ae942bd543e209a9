"""Routing: which upstream (or local endpoint) a request is for, decided by host and path prefix.

The router is the guard of the ``route`` phase, so an unknown route is a denial like any other
(logged once, answered with a problem) and later guards find the route in ``request.state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from bastion.config.models import RouteConfig
from bastion.config.types import UpstreamURL
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request, StateKey
from bastion.pipeline.response import Endpoint


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """A compiled route. Exactly one of ``upstream`` and ``endpoint`` is set."""

    name: str
    path_prefix: str = "/"
    host: str | None = None
    upstream: UpstreamURL | None = None
    endpoint: Endpoint | None = None
    strip_prefix: bool = False
    preserve_host: bool = False

    @classmethod
    def from_config(cls, config: RouteConfig) -> Route:
        return cls(
            name=config.name,
            path_prefix=config.path_prefix,
            host=config.host,
            upstream=config.upstream,
            strip_prefix=config.strip_prefix,
            preserve_host=config.preserve_host,
        )

    def matches_host(self, host: str) -> bool:
        if self.host is None:
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    def matches_path(self, path: str) -> bool:
        prefix = self.path_prefix
        if prefix == "/" or path == prefix:
            return True
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path.startswith(prefix) and path[len(prefix)] == "/"

    def upstream_path(self, path: str) -> str:
        """The path to send upstream: prefix stripped if asked, upstream base path prepended."""
        assert self.upstream is not None
        if self.strip_prefix and self.path_prefix != "/":
            path = path[len(self.path_prefix.rstrip("/")) :] or "/"
            if not path.startswith("/"):
                path = "/" + path
        base = self.upstream.base_path
        return base + path if base else path


ROUTE: Final[StateKey[Route]] = StateKey("route")

NO_ROUTE: Final = Deny(404, "route.not_found", "Not Found", "No route serves this path.")


class Router:
    """The ``router`` guard: picks the most specific route, refuses requests that match none."""

    name: ClassVar[str] = "router"
    phase: ClassVar[Phase] = Phase.ROUTE
    requires_body: ClassVar[bool] = False

    def __init__(self, routes: Sequence[Route]) -> None:
        self.fail_open = False
        # Host-bound routes before catch-alls, exact hosts before wildcards, long prefixes first.
        self.routes = sorted(
            routes,
            key=lambda r: (
                r.host is None,
                bool(r.host and r.host.startswith("*.")),
                -len(r.path_prefix),
            ),
        )
        only = self.routes[0] if len(self.routes) == 1 else None
        self._single = only if only is not None and self._catch_all(only) else None

    @staticmethod
    def _catch_all(route: Route) -> bool:
        return route.host is None and route.path_prefix == "/"

    def match(self, host: str, path: str) -> Route | None:
        if self._single is not None:
            return self._single
        for route in self.routes:
            if route.matches_host(host) and route.matches_path(path):
                return route
        return None

    def check(self, request: Request) -> Decision:
        route = self.match(request.host, request.path)
        if route is None:
            return NO_ROUTE
        request.state[ROUTE] = route
        return ALLOW
