"""BastionMiddleware over HTTP, through a real uvicorn server and a real httpx client."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from bastion.asgi import BastionMiddleware
from bastion.config import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline import ALLOW, Allow, Decision, Deny, GuardChain, Phase, Request
from tests.asgi.apps import (
    MARK,
    SECRET_TEXT,
    raises_before_start,
    raises_mid_body,
    returns_nothing,
    starlette_app,
)
from tests.asgi.conftest import DenyPrefix, Serve

PROBLEM = "application/problem+json"


class AddHeaders:
    """Allows everything, adding a rate-limit style header and marking the request state."""

    name: ClassVar[str] = "test.add_headers"
    phase: ClassVar[Phase] = Phase.RATE_LIMIT
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        request.state[MARK] = "seen-by-guard"
        return Allow(headers=(("RateLimit-Policy", '"default";q=100;w=60'),))


class BodyGuard:
    """Needs the body; records what it saw, denies bodies containing ``<script``."""

    name: ClassVar[str] = "test.body"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True

    def __init__(self) -> None:
        self.fail_open = False
        self.seen: list[bytes | None] = []

    async def check(self, request: Request) -> Decision:
        self.seen.append(request.body)
        if request.body and b"<script" in request.body:
            return Deny(400, "validation.injection", "Bad Request", "The body was refused.")
        return ALLOW


class Broken:
    """A guard with a bug: the chain turns its exception into a 503 (fail closed)."""

    name: ClassVar[str] = "test.broken"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        raise ConnectionError("redis at redis://:pw@cache:6379 is gone")


class Hooks:
    """Response and completion hooks: adds a header, records every completed exchange."""

    name: ClassVar[str] = "test.hooks"
    phase: ClassVar[Phase] = Phase.LOG
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False
        self.completed: list[tuple[str, int, int]] = []

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        headers.append(("x-hooked", str(status)))

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        self.completed.append((request.path, status, bytes_sent))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def middleware(
    *guards: object,
    sink: MemorySink | None = None,
    calls: list[str] | None = None,
    **config: object,
) -> BastionMiddleware:
    sink = sink if sink is not None else MemorySink()
    chain = GuardChain(list(guards), sink)  # type: ignore[arg-type]
    app = starlette_app(calls if calls is not None else [])
    return BastionMiddleware(app, build_config(config), chain=chain)


def test_denial_is_a_problem_and_the_app_never_runs(serve: Serve, client: httpx.Client) -> None:
    calls: list[str] = []
    base = serve(middleware(DenyPrefix("/admin"), calls=calls))

    response = client.get(f"{base}/admin/users")

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "authz.forbidden"
    assert problem["status"] == 403
    assert problem["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert calls == []
    assert client.get(f"{base}/public").status_code == 200
    assert calls == ["/public"]


def test_each_denial_is_one_event(serve: Serve, client: httpx.Client) -> None:
    sink = MemorySink()
    base = serve(middleware(DenyPrefix("/admin"), AddHeaders(), sink=sink))

    client.get(f"{base}/admin/a")
    client.get(f"{base}/admin/b")
    client.get(f"{base}/public")

    assert sink.actions() == ["authz.forbidden", "authz.forbidden"]
    assert [e.path for e in sink.events] == ["/admin/a", "/admin/b"]
    assert all(e.guard == "test.deny_prefix" and e.status == 403 for e in sink.events)


def test_allow_headers_and_guard_state_reach_the_app_and_client(
    serve: Serve, client: httpx.Client
) -> None:
    base = serve(middleware(AddHeaders()))

    response = client.get(f"{base}/whoami")

    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"default";q=100;w=60'
    assert response.json()["marks"] == "seen-by-guard"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_body_guard_sees_the_body_and_the_app_gets_it_intact(
    serve: Serve, client: httpx.Client
) -> None:
    guard = BodyGuard()
    base = serve(middleware(guard))
    payload = bytes(range(256)) * 400  # 100 KiB, every byte value

    fixed = client.post(f"{base}/upload", content=payload)
    streamed = client.post(f"{base}/upload", content=iter([payload[:5000], payload[5000:]]))

    for response in (fixed, streamed):
        assert response.status_code == 200
        assert bytes.fromhex(response.json()["body_hex"]) == payload
    assert guard.seen == [payload, payload]


def test_body_guard_denial_keeps_the_body_from_the_app(serve: Serve, client: httpx.Client) -> None:
    calls: list[str] = []
    base = serve(middleware(BodyGuard(), calls=calls))

    response = client.post(f"{base}/comment", content=b"hello <script>alert(1)</script>")

    assert response.status_code == 400
    assert response.json()["code"] == "validation.injection"
    assert calls == []


def test_body_past_the_limit_is_413(serve: Serve, client: httpx.Client) -> None:
    sink = MemorySink()
    calls: list[str] = []
    guard = BodyGuard()
    mw = middleware(guard, sink=sink, calls=calls, limits={"max_body_bytes": 1000})
    base = serve(mw)

    declared = client.post(f"{base}/upload", content=b"x" * 1001)
    chunked = client.post(f"{base}/upload", content=iter([b"x" * 600, b"x" * 600]))
    at_limit = client.post(f"{base}/upload", content=b"x" * 1000)

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "request.body_too_large"
    assert at_limit.status_code == 200
    assert calls == ["/upload"]
    assert guard.seen == [b"x" * 1000]
    # A refusal before the chain: counted and recorded once each, as in the gateway.
    assert sink.actions() == ["request.body_too_large"] * 2
    assert {e.status for e in sink.events} == {413}
    assert mw.stats.protocol_errors == {"request.body_too_large": 2}


def test_no_body_guard_means_no_limit_and_no_buffering(serve: Serve, client: httpx.Client) -> None:
    base = serve(middleware(DenyPrefix(), limits={"max_body_bytes": 10}))

    response = client.post(f"{base}/upload", content=b"y" * 5000)

    assert response.status_code == 200
    assert bytes.fromhex(response.json()["body_hex"]) == b"y" * 5000


def test_request_id_is_accepted_only_from_trusted_proxies(
    serve: Serve, client: httpx.Client
) -> None:
    untrusted = serve(middleware())
    trusted = serve(middleware(proxy={"trusted_proxies": ["127.0.0.1/32"]}))
    renamed = serve(
        middleware(
            proxy={"trusted_proxies": ["127.0.0.1"], "request_id_header": "X-Correlation-ID"}
        )
    )

    spoofed = client.get(f"{untrusted}/whoami", headers={"x-request-id": "chosen-by-client"})
    relayed = client.get(f"{trusted}/whoami", headers={"x-request-id": "edge-42"})
    malformed = client.get(f"{trusted}/whoami", headers={"x-request-id": "bad id\\with spaces"})
    generated = client.get(f"{untrusted}/whoami")
    correlation = client.get(f"{renamed}/whoami", headers={"x-correlation-id": "corr-7"})

    assert spoofed.headers["x-request-id"] != "chosen-by-client"
    assert spoofed.json()["request_id"] == spoofed.headers["x-request-id"]
    assert relayed.headers["x-request-id"] == "edge-42"
    assert relayed.json()["request_id"] == "edge-42"
    assert malformed.headers["x-request-id"] != "bad id\\with spaces"
    assert generated.headers["x-request-id"] not in ("", spoofed.headers["x-request-id"])
    assert correlation.headers["x-correlation-id"] == "corr-7"
    assert "x-request-id" not in correlation.headers


def test_client_address_comes_from_trusted_forwarding_headers_only(
    serve: Serve, client: httpx.Client
) -> None:
    untrusted = serve(middleware())
    trusted = serve(middleware(proxy={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}))
    forwarded = {
        "x-forwarded-for": "203.0.113.7, 198.51.100.1, 10.1.2.3",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example.com",
    }

    spoofed = client.get(f"{untrusted}/whoami", headers=forwarded).json()
    believed = client.get(f"{trusted}/whoami", headers=forwarded).json()
    direct = client.get(f"{trusted}/whoami").json()

    assert spoofed == spoofed | {"client": "127.0.0.1", "scheme": "http", "host": "127.0.0.1"}
    # Walked from the right: 10.1.2.3 is a trusted hop, 198.51.100.1 is the first that is not.
    assert believed["client"] == "198.51.100.1"
    assert believed["peer"] == "127.0.0.1"
    assert believed["scheme"] == "https"
    assert believed["host"] == "api.example.com"
    assert direct["client"] == "127.0.0.1"


def test_app_5xx_bodies_are_masked(serve: Serve, client: httpx.Client) -> None:
    masked = serve(middleware())
    unmasked = serve(middleware(responses={"mask_upstream_errors": False}))

    response = client.get(f"{masked}/fail")
    raw = client.get(f"{unmasked}/fail")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "upstream.error"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.headers["retry-after"] == "7"
    assert SECRET_TEXT not in response.text
    assert raw.status_code == 503
    assert SECRET_TEXT in raw.text
    assert raw.headers["x-content-type-options"] == "nosniff"


def test_bastion_own_5xx_is_not_masked(serve: Serve, client: httpx.Client) -> None:
    calls: list[str] = []
    base = serve(middleware(Broken(), calls=calls))

    response = client.get(f"{base}/anything")

    assert response.status_code == 503
    assert response.json()["code"] == "guard.unavailable"
    assert "redis" not in response.text
    assert calls == []


@pytest.mark.parametrize("debug", [False, True])
def test_framework_error_page_is_replaced_by_a_problem(
    serve: Serve, client: httpx.Client, debug: bool
) -> None:
    """Starlette answers an exception with its own 500 (a traceback page in debug mode)."""
    app = starlette_app([], debug=debug)
    base = serve(BastionMiddleware(app, build_config({}), chain=GuardChain([], MemorySink())))

    response = client.get(f"{base}/boom")

    assert response.status_code == 500
    assert response.json()["code"] == "upstream.error"
    assert SECRET_TEXT not in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("mask", [True, False])
def test_exception_before_the_response_is_a_500_problem(
    serve: Serve, client: httpx.Client, caplog: pytest.LogCaptureFixture, mask: bool
) -> None:
    config = build_config({"responses": {"mask_upstream_errors": mask}})
    mw = BastionMiddleware(raises_before_start, config, chain=GuardChain([], MemorySink()))
    base = serve(mw)

    with caplog.at_level(logging.ERROR, logger="bastion.asgi"):
        response = client.get(f"{base}/orders?api_key=sk_live_querysecret")

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "upstream.error"
    assert SECRET_TEXT not in response.text
    assert "lookup failed" not in response.text
    logged = [r for r in caplog.records if r.name == "bastion.asgi"]
    assert len(logged) == 1
    assert response.headers["x-request-id"] in logged[0].getMessage()
    assert "sk_live_querysecret" not in caplog.text
    assert mw.stats.snapshot().requests == {"app|GET|500": 1}


def test_app_returning_without_a_response_is_a_500_problem(
    serve: Serve, client: httpx.Client
) -> None:
    mw = BastionMiddleware(returns_nothing, build_config({}), chain=GuardChain([], MemorySink()))
    base = serve(mw)

    response = client.get(f"{base}/")

    assert response.status_code == 500
    assert response.json()["code"] == "upstream.error"


def test_exception_after_the_response_started_aborts_the_connection(
    serve: Serve, client: httpx.Client
) -> None:
    mw = BastionMiddleware(raises_mid_body, build_config({}), chain=GuardChain([], MemorySink()))
    base = serve(mw)

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{base}/stream")


def test_banners_dropped_nosniff_and_request_id_added(serve: Serve, client: httpx.Client) -> None:
    plain = serve(middleware())
    branded = serve(middleware(responses={"server_header": "bastion"}))

    dropped = client.get(f"{plain}/banner")
    replaced = client.get(f"{branded}/banner")
    kept = client.get(f"{plain}/own-headers")

    assert "server" not in dropped.headers
    assert "x-powered-by" not in dropped.headers
    assert dropped.headers["x-content-type-options"] == "nosniff"
    assert dropped.headers["x-request-id"]
    assert replaced.headers.get_list("server") == ["bastion"]
    assert "x-powered-by" not in replaced.headers
    assert kept.headers.get_list("x-content-type-options") == ["nosniff"]
    assert kept.headers.get_list("x-request-id") != ["app-chosen"]
    assert len(kept.headers.get_list("x-request-id")) == 1


def test_dot_segments_are_refused_as_the_gateway_does(serve: Serve, client: httpx.Client) -> None:
    calls: list[str] = []
    sink = MemorySink()
    mw = middleware(DenyPrefix("/admin"), sink=sink, calls=calls)
    base = serve(mw)

    # httpx (like browsers) removes dot segments, so these go out on a bare socket.
    for path in ("/public/../admin/users", "/public/%2e%2E/admin/users", "/./admin"):
        status, body = raw_get(base, path)
        assert status == 400, path
        assert json.loads(body)["code"] == "request.invalid_path"
    assert calls == []
    assert sink.actions() == ["request.invalid_path"] * 3
    assert mw.stats.protocol_errors == {"request.invalid_path": 3}


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """``GET target`` written byte for byte on a socket; the status and body of the answer."""
    host, port = httpx.URL(base).host, httpx.URL(base).port
    assert port is not None
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_response_and_completion_hooks_run_once_per_exchange(
    serve: Serve, client: httpx.Client
) -> None:
    hooks = Hooks()
    base = serve(middleware(DenyPrefix("/admin"), hooks))

    ok = client.get(f"{base}/hello")
    denied = client.get(f"{base}/admin")

    assert ok.headers["x-hooked"] == "200"
    assert denied.headers["x-hooked"] == "403"
    assert [(path, status) for path, status, _ in hooks.completed] == [
        ("/hello", 200),
        ("/admin", 403),
    ]
    assert hooks.completed[0][2] == len(ok.content)
    assert hooks.completed[1][2] == len(denied.content)


def test_every_exchange_is_counted(serve: Serve, client: httpx.Client) -> None:
    mw = middleware(DenyPrefix("/admin"))
    base = serve(mw)

    client.get(f"{base}/a")
    client.get(f"{base}/b")
    client.post(f"{base}/c", content=b"x")
    client.get(f"{base}/admin")
    client.get(f"{base}/fail")
    client.request("PURGE", f"{base}/a")

    assert mw.stats.snapshot().requests == {
        "app|GET|200": 2,
        "app|POST|200": 1,
        "app|GET|403": 1,
        "app|GET|503": 1,
        "app|OTHER|405": 1,
    }
    assert mw.stats.in_flight == 0


def test_an_empty_chain_passes_everything_untouched(serve: Serve, client: httpx.Client) -> None:
    mw = middleware()
    assert mw.chain.empty
    base = serve(mw)
    body = b"\x00\xffraw body"

    request = client.build_request(
        "PUT",
        f"{base}/x",
        params=None,
        headers={"X-Custom": "Value With Spaces", "authorization": "Bearer abc"},
        content=body,
    )
    request.url = request.url.copy_with(raw_path=b"/files/a%2Fb%20c;v=1?q=%20x&empty=&a=1&a=2")
    response = client.send(request)

    echoed = response.json()
    assert response.status_code == 200
    assert echoed["method"] == "PUT"
    assert echoed["raw_path"] == "/files/a%2Fb%20c;v=1"
    assert echoed["query"] == "q=%20x&empty=&a=1&a=2"
    assert ["x-custom", "Value With Spaces"] in echoed["headers"]
    assert ["authorization", "Bearer abc"] in echoed["headers"]
    assert bytes.fromhex(echoed["body_hex"]) == body


def test_config_from_a_yaml_path(serve: Serve, client: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text("responses:\n  server_header: edge\nevents:\n  sink: none\n")
    base = serve(BastionMiddleware(starlette_app([]), str(path)))

    assert client.get(f"{base}/x").headers["server"] == "edge"


def test_events_with_a_given_chain_must_be_its_sink() -> None:
    chain = GuardChain([], MemorySink())
    with pytest.raises(ValueError, match="already has its sink"):
        BastionMiddleware(starlette_app([]), chain=chain, events=MemorySink())
    with pytest.raises(TypeError, match="expected a BastionConfig"):
        BastionMiddleware(starlette_app([]), 42)  # type: ignore[arg-type]


def test_head_denial_has_the_headers_but_no_body(serve: Serve, client: httpx.Client) -> None:
    base = serve(middleware(DenyPrefix("/admin")))

    response = client.head(f"{base}/admin")

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""
