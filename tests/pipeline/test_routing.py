"""Routing by host and path prefix: the most specific route wins, no route is a 404 denial."""

from __future__ import annotations

import pytest

from bastion.config import build_config
from bastion.config.types import parse_upstream_url
from bastion.pipeline import Deny
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import ROUTE, Route, Router


def route(name: str, prefix: str = "/", host: str | None = None, **kw: object) -> Route:
    up = parse_upstream_url(str(kw.pop("upstream", "http://127.0.0.1:9000")))
    return Route(name=name, path_prefix=prefix, host=host, upstream=up, **kw)  # type: ignore[arg-type]


ROUTES = [
    route("catch-all"),
    route("api", "/api"),
    route("api-v2", "/api/v2/"),
    route("admin-host", "/", host="admin.example.com"),
    route("wild", "/", host="*.tenants.example.com"),
    route("wild-api", "/api", host="*.tenants.example.com"),
]


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("x.test", "/", "catch-all"),
        ("x.test", "/api", "api"),
        ("x.test", "/api/users", "api"),
        ("x.test", "/apix", "catch-all"),
        ("x.test", "/api/v2/users", "api-v2"),
        ("x.test", "/api/v2", "api"),
        ("admin.example.com", "/api", "admin-host"),
        ("a.tenants.example.com", "/", "wild"),
        ("a.tenants.example.com", "/api/x", "wild-api"),
        ("tenants.example.com", "/", "catch-all"),
    ],
)
def test_most_specific_route_wins(host: str, path: str, expected: str) -> None:
    matched = Router(ROUTES).match(host, path)
    assert matched is not None
    assert matched.name == expected


def test_no_matching_route_is_a_404_denial() -> None:
    router = Router([route("api", "/api")])
    request = Request(
        method="GET",
        path="/other",
        query="",
        headers=Headers([]),
        client=ClientAddress("1.2.3.4", 1),
    )
    decision = router.check(request)
    assert isinstance(decision, Deny)
    assert (decision.status, decision.code) == (404, "route.not_found")
    assert ROUTE not in request.state


def test_matched_route_is_shared_in_state() -> None:
    router = Router([route("api", "/api")])
    request = Request(
        method="GET",
        path="/api/x",
        query="",
        headers=Headers([]),
        client=ClientAddress("1.2.3.4", 1),
    )
    router.check(request)
    assert request.state[ROUTE].name == "api"


@pytest.mark.parametrize(
    ("prefix", "strip", "base", "path", "expected"),
    [
        ("/", False, "", "/a/b", "/a/b"),
        ("/api", True, "", "/api/users", "/users"),
        ("/api", True, "", "/api", "/"),
        ("/api/", True, "", "/api/users", "/users"),
        ("/api", False, "/v1", "/api/users", "/v1/api/users"),
        ("/api", True, "/v1", "/api/users", "/v1/users"),
    ],
)
def test_upstream_path(prefix: str, strip: bool, base: str, path: str, expected: str) -> None:
    r = route("r", prefix, strip_prefix=strip, upstream=f"http://127.0.0.1:9000{base}")
    assert r.upstream_path(path) == expected


def test_routes_from_config() -> None:
    config = build_config(
        {"routes": [{"name": "api", "upstream": "http://10.0.0.5:8000/base", "path_prefix": "/v1"}]}
    )
    compiled = Route.from_config(config.routes[0])
    assert compiled.upstream is not None
    assert (compiled.upstream.host, compiled.upstream.port) == ("10.0.0.5", 8000)
    assert compiled.upstream_path("/v1/x") == "/base/v1/x"
