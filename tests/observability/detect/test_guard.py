"""The ``monitor`` guard on request views: it always allows; its completion hook reads the
identity, the route and the body size, and counts failed answers of login routes by account."""

from __future__ import annotations

import base64

from bastion.observability.detect.guard import MonitorGuard, request_size
from bastion.observability.events import MemorySink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import ROUTE, Route
from tests.observability.detect.helpers import harness


def request(
    path: str = "/login",
    *,
    method: str = "POST",
    ip: str = "198.51.100.30",
    headers: list[tuple[bytes, bytes]] | None = None,
    route: str = "login",
    consumer: str | None = None,
) -> Request:
    made = Request(
        method=method,
        path=path,
        query="",
        headers=Headers(headers or []),
        client=ClientAddress(ip, 5000),
    )
    made.state[ROUTE] = Route(name=route)
    if consumer is not None:
        made.state[IDENTITY] = Identity(consumer=consumer, method="api_key")
    return made


def basic(user: str) -> tuple[bytes, bytes]:
    return b"authorization", b"Basic " + base64.b64encode(f"{user}:hunter2".encode())


def test_check_allows_and_the_body_size_comes_from_content_length() -> None:
    guard = MonitorGuard(harness().monitor)
    assert guard.check(request()) is ALLOW
    assert request_size(request(headers=[(b"content-length", b"2048")])) == 2048
    assert request_size(request(headers=[(b"content-length", b"junk")])) == 0
    assert request_size(request(method="GET", headers=[(b"content-length", b"9")])) == 0


def test_failed_answers_of_a_login_route_count_by_basic_user() -> None:
    h = harness()
    guard = MonitorGuard(h.monitor, login_routes=frozenset({"login"}))
    for i in range(10):
        guard.on_complete(request(headers=[basic(f"victim{i}")]), 401, 80, 0.01)
    [alert] = h.of("credential_stuffing")
    assert alert.evidence["ip"] == "198.51.100.30"
    assert alert.evidence["accounts"] == ["v…(7)"] * 10  # masked (tests/advisories)
    assert "hunter2" not in str(alert.document())


def test_an_account_header_names_the_account_and_other_routes_do_not_count() -> None:
    h = harness()
    guard = MonitorGuard(h.monitor, login_routes=frozenset({"login"}), account_header="x-user")
    for i in range(10):
        guard.on_complete(request(route="api", headers=[basic(f"u{i}")]), 401, 80, 0.01)
    assert h.of("credential_stuffing") == []
    for i in range(10):
        guard.on_complete(request(headers=[(b"x-user", f"u{i}".encode())]), 403, 80, 0.01)
    assert h.of("credential_stuffing")[0].evidence["distinct"] == 10


def test_the_hook_feeds_identity_route_and_sizes() -> None:
    h = harness()
    guard = MonitorGuard(h.monitor)
    for _ in range(300):
        guard.on_complete(
            request("/upload", consumer="acme", route="files",
                    headers=[(b"content-length", b"300")]),
            200, 1000, 0.01,
        )  # fmt: skip
    big = request("/upload", consumer="acme", route="files",
                  headers=[(b"content-length", b"9000000")])  # fmt: skip
    guard.on_complete(big, 200, 1000, 0.01)
    [alert] = h.of("payload_outlier")
    assert alert.evidence["route"] == "files"
    assert alert.evidence["consumer"] == "acme"
    snapshot = h.monitor.snapshot()
    assert snapshot["alerts"] == {"payload_outlier": 1}
    assert snapshot["detections"] == 1
    assert snapshot["evicted"]["spike"] == 0


class _Completions:
    name = "completions"
    phase = Phase.LOG
    requires_body = False
    fail_open = True

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        self.statuses.append(status)


def test_the_chain_names_the_guard_as_its_observer_and_can_leave_its_hook_out() -> None:
    """The engine feeds the chain's observer itself and asks for the other hooks only
    (``observed``); a host that does not (the middleware) gets every hook, the guard's too."""
    guard = MonitorGuard(harness().monitor)
    other = _Completions()
    chain = GuardChain([guard, other], MemorySink())
    assert chain.observer is guard
    assert chain.unobserved_hooks == 1
    payload = guard.monitor.payload
    assert payload is not None
    chain.on_complete(request(route="api"), 200, 100, 0.01, True)
    assert (other.statuses, payload.sizes("api", "response")) == ([200], 0)
    chain.on_complete(request(route="api"), 201, 100, 0.01)
    assert (other.statuses, payload.sizes("api", "response")) == ([200, 201], 1)
    guard.exchange(request(route="api"), None, "api", "198.51.100.30", 200, 0, 100, None)
    assert payload.sizes("api", "response") == 2
    assert GuardChain([other], MemorySink()).observer is None
