"""A small in-memory API (items, orders, user profiles, an admin page, a failing route) that the
demo puts behind bastion.

It is served by bastion's own engine as local endpoints on a loopback port, so the demo needs
nothing but the package. It behaves like a careless upstream on purpose: ``/error`` leaks a stack
trace, which the gateway masks, and ``/users/<id>`` answers for any id (the gateway's object-level
rule is what keeps callers to their own profile). Authenticated routes echo the caller the
gateway identified (``X-Bastion-Consumer``), which only the gateway can set.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route

_JSON = (("content-type", "application/json"),)
_SHOWN_HEADERS = ("host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded",
                  "x-request-id")  # fmt: skip
_LEAKY_TRACE = (
    b"Traceback (most recent call last):\n"
    b'  File "/srv/demo/app.py", line 42, in get_report\n'
    b'    rows = db.execute("SELECT * FROM reports WHERE id = %s" % report_id)\n'
    b'psycopg.errors.UndefinedTable: relation "reports" does not exist\n'
)


MAX_ITEMS = 1_000
"""Items the demo keeps (its document's ``maxItems`` for ``GET /items``): any client of the demo
can create items, so the store is bounded; past it the oldest created item is forgotten."""
_SEEDED = frozenset({1, 2})


def openapi_path() -> Path:
    """The demo API's OpenAPI document on disk: the gateway validates the ``demo`` route's
    requests against it (``validation.routes``), so an invalid body never reaches the API."""
    return Path(str(resources.files("bastion.demo").joinpath("openapi.yaml")))


DEMO_VALIDATION = {"enabled": True, "routes": ["demo"]}


def openapi_text() -> str:
    """The demo API's OpenAPI document, shipped with the package."""
    return resources.files("bastion.demo").joinpath("openapi.yaml").read_text(encoding="utf-8")


def _json(status: int, doc: Any, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, _JSON + extra, orjson.dumps(doc))


def _caller(request: Request) -> str | None:
    return request.headers.get("x-bastion-consumer")


def _not_allowed(allowed: str) -> Response:
    return _json(405, {"error": "method not allowed"}, (("allow", allowed),))


class DemoAPI:
    """The demo's state (the item store) and its routes."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "lamp", "price": 25.0},
            2: {"id": 2, "name": "desk", "price": 180.0},
        }
        self._ids = itertools.count(3)
        self.alerts: list[Any] = []  # what bastion's alert webhook delivered (newest last)

    async def hello(self, request: Request) -> Response:
        return _json(200, {"message": "hello from the demo API"})

    async def items_route(self, request: Request) -> Response:
        rest = request.path.removeprefix("/items").strip("/")
        if not rest:
            if request.method == "GET":
                return _json(200, {"items": list(self.items.values())})
            if request.method == "POST":
                return self._create(request.body or b"")
            return _not_allowed("GET, POST")
        if request.method != "GET":
            return _not_allowed("GET")
        # at most 9 digits: int() of a client's endless digit string would raise (a 500)
        item = self.items.get(int(rest)) if rest.isdigit() and len(rest) <= 9 else None
        if item is None:
            return _json(404, {"error": "no such item"})
        return _json(200, item)

    def _create(self, body: bytes) -> Response:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json(400, {"error": "body is not JSON"})
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            return _json(400, {"error": "expected an object with a name"})
        item = {"id": next(self._ids), "name": doc["name"], "price": doc.get("price", 0)}
        self.items[item["id"]] = item
        if len(self.items) > MAX_ITEMS:  # the oldest created item goes; the seeded ones stay
            del self.items[next(k for k in self.items if k not in _SEEDED)]
        return _json(201, item)

    async def echo_headers(self, request: Request) -> Response:
        shown = {name: request.headers.get_all(name) for name in _SHOWN_HEADERS}
        return _json(200, {name: values for name, values in shown.items() if values})

    async def orders(self, request: Request) -> Response:
        return _json(200, {"orders": [{"id": 1, "item": 1, "quantity": 2}],
                           "caller": _caller(request)})  # fmt: skip

    async def admin(self, request: Request) -> Response:
        return _json(200, {"items": len(self.items), "caller": _caller(request)})

    async def user(self, request: Request) -> Response:
        user_id = request.path.removeprefix("/users/").split("/", 1)[0]
        return _json(200, {"user": user_id, "caller": _caller(request)})

    async def error(self, request: Request) -> Response:
        return Response(500, (("content-type", "text/plain"),), _LEAKY_TRACE)

    async def alerts_inbox(self, request: Request) -> Response:
        """The demo's alert webhook: bastion POSTs each alert here; GET lists them."""
        if request.method == "POST":
            try:
                self.alerts.append(orjson.loads(request.body or b""))
            except orjson.JSONDecodeError:
                return _json(400, {"error": "body is not JSON"})
            del self.alerts[:-50]
            return _json(202, {"received": len(self.alerts)})
        if request.method != "GET":
            return _not_allowed("GET, POST")
        return _json(200, {"alerts": self.alerts})

    async def openapi(self, request: Request) -> Response:
        return Response(200, (("content-type", "application/yaml"),), openapi_text().encode())

    def routes(self) -> list[Route]:
        def route(name: str, prefix: str, func: Any, body: bool = False) -> Route:
            return Route(name=f"demo.{name}", path_prefix=prefix,
                         endpoint=FunctionEndpoint(func, requires_body=body))  # fmt: skip

        return [
            route("hello", "/hello", self.hello),
            route("items", "/items", self.items_route, body=True),
            route("headers", "/headers", self.echo_headers),
            route("error", "/error", self.error),
            route("orders", "/orders", self.orders),
            route("admin", "/admin", self.admin),
            route("users", "/users", self.user),
            route("openapi", "/openapi.yaml", self.openapi),
            route("alerts", "/alerts", self.alerts_inbox, body=True),
        ]
