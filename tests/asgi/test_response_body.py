"""Middleware mode: response bodies a guard rewrites, and HSTS for clients that came over HTTPS."""

from __future__ import annotations

from typing import ClassVar

import httpx
import orjson

from bastion.asgi import BastionMiddleware
from bastion.asgi.types import Receive, Scope, Send
from bastion.config import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline import ALLOW, Decision, GuardChain, Phase, Request
from bastion.pipeline.response_body import RESPONSE_BODY
from tests.asgi.conftest import Serve


def shout(status: int, content_type: str | None, body: bytes) -> bytes | None:
    if content_type != "application/json":
        return None
    doc = orjson.loads(body)
    if doc.get("fail"):
        raise ValueError("cannot")
    return orjson.dumps({key: str(value).upper() for key, value in doc.items()})


class Shout:
    """Asks for the response of ``/shout`` to be rewritten (upper-cased values)."""

    name: ClassVar[str] = "test.shout"
    phase: ClassVar[Phase] = Phase.FORWARD
    requires_body: ClassVar[bool] = False
    rewrites_responses: ClassVar[bool] = True

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        if request.path.startswith("/shout"):
            request.state[RESPONSE_BODY] = shout
        return ALLOW


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    if path.endswith("/text"):
        headers = [(b"content-type", b"text/plain")]
        parts = [b"plain"]
    else:
        headers = [(b"content-type", b"application/json")]
        doc = {"fail": True} if path.endswith("/fail") else {"name": "ada", "role": "admin"}
        body = orjson.dumps(doc)
        parts = [body[:5], body[5:]]  # streamed in two messages
    headers.append((b"strict-transport-security", b"max-age=60"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i, part in enumerate(parts):
        more = i < len(parts) - 1
        await send({"type": "http.response.body", "body": part, "more_body": more})


def middleware(limit: int = 1_000_000) -> BastionMiddleware:
    config = build_config(
        {
            "events": {"sink": "none"},
            "limits": {"max_body_bytes": limit},
            "proxy": {"trusted_proxies": ["127.0.0.1/32"]},
        }
    )
    return BastionMiddleware(app, config, chain=GuardChain([Shout()], MemorySink()))


def test_a_guard_rewrites_a_streamed_app_response(serve: Serve) -> None:
    base = serve(middleware())
    answer = httpx.get(f"{base}/shout")
    other = httpx.get(f"{base}/quiet")
    text = httpx.get(f"{base}/shout/text")
    assert answer.status_code == 200
    assert answer.json() == {"name": "ADA", "role": "ADMIN"}
    assert answer.headers["content-length"] == str(len(answer.content))
    assert other.json() == {"name": "ada", "role": "admin"}
    assert text.text == "plain"


def test_a_rewrite_that_fails_is_a_502_without_the_app_body(serve: Serve) -> None:
    base = serve(middleware())
    answer = httpx.get(f"{base}/shout/fail")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "upstream.response_unprocessable"
    assert "fail" not in answer.text


def test_a_held_response_over_the_limit_is_a_502(serve: Serve) -> None:
    base = serve(middleware(limit=8))
    answer = httpx.get(f"{base}/shout")
    assert answer.status_code == 502
    assert "ada" not in answer.text


def test_hsts_replaces_the_apps_own_when_the_client_came_over_https(serve: Serve) -> None:
    base = serve(middleware())
    plain = httpx.get(f"{base}/quiet")
    # the load balancer in front (a trusted proxy) terminated TLS and says so
    secure = httpx.get(f"{base}/quiet", headers={"x-forwarded-proto": "https"})
    # over plain HTTP bastion adds none (a browser ignores HSTS there); the app's own passes
    assert plain.headers.get_list("strict-transport-security") == ["max-age=60"]
    assert secure.headers.get_list("strict-transport-security") == [
        "max-age=31536000; includeSubDomains"
    ]
