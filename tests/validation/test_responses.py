"""Upstream responses against the documented response schemas: monitor mode (an event per
violation, the response untouched) and strip mode (undocumented properties removed), through the
real engine with a real upstream answering canned responses, and through BastionMiddleware."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from bastion.asgi import BastionMiddleware
from bastion.asgi.types import Receive, Scope, Send
from bastion.config.models import BastionConfig
from bastion.observability.events import MemorySink, SecurityEvent
from tests.engine.upstream_app import Upstream
from tests.validation.gateway import gateway_config, start_validating_gateway
from tests.validation.helpers import SPECS, config_for

USERS = SPECS / "responses-3.1.yaml"
SECRET = "hunter2-<script>"

# What an upstream that serialises its whole model returns: the documented user, plus what the
# document never promised (a hash, an admin flag, nested and in additionalProperties' objects).
LEAKY_USER: dict[str, Any] = {
    "id": 7,
    "name": "ada",
    "password": SECRET,
    "password_hash": "$2b$12$abc",
    "is_admin": True,
    "profile": {"bio": "hi", "github": "ada", "ssn": "123-45-6789"},
    "tags": ["a", "b"],
    "labels": {"team": {"value": 1, "internal": "x"}, "site": {"value": 2}},
}
STRIPPED_USER: dict[str, Any] = {
    "id": 7,
    "name": "ada",
    "profile": {"bio": "hi", "github": "ada"},
    "tags": ["a", "b"],
    "labels": {"team": {"value": 1}, "site": {"value": 2}},
}


def reply(status: int, body: bytes, content_type: str = "application/json") -> list[bytes]:
    head = b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (
        status,
        content_type.encode(),
        len(body),
    )
    return [head, body[: len(body) // 2], body[len(body) // 2 :]]  # the body in two reads


async def fetch(
    upstream: Upstream, config: BastionConfig, path: str, answer: list[bytes]
) -> tuple[httpx.Response, list[SecurityEvent]]:
    """``path`` fetched through a fresh gateway, the upstream answering ``answer``."""
    events = MemorySink()
    upstream.replies[path] = answer
    server = await start_validating_gateway(config, events)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            response = await http.get(path)
    finally:
        await server.shutdown(1.0)
    return response, [e for e in events.events if e.action.startswith("validation.response")]


def users_config(upstream: Upstream, **validation: Any) -> BastionConfig:
    return gateway_config(USERS, upstream.url, validation={"enabled": True, **validation})


async def test_strip_removes_what_the_document_does_not_describe(upstream: Upstream) -> None:
    body = orjson.dumps(LEAKY_USER)
    response, events = await fetch(
        upstream, users_config(upstream, responses="strip"), "/users/7", reply(200, body)
    )
    assert response.status_code == 200
    assert response.json() == STRIPPED_USER
    assert response.headers["content-length"] == str(len(response.content))
    assert SECRET not in response.text
    [event] = events
    assert event.action == "validation.response_stripped"
    assert event.status == 200
    assert sorted(event.fields["pointers"]) == [
        "/body/is_admin",
        "/body/labels/team/internal",
        "/body/password",
        "/body/password_hash",
        "/body/profile/ssn",
    ]
    assert SECRET not in orjson.dumps(event.to_ecs()).decode()


async def test_strip_follows_arrays_and_recursive_schemas(upstream: Upstream) -> None:
    config = users_config(upstream, responses="strip")
    users = orjson.dumps([LEAKY_USER, {"id": 8, "name": "bob", "token": "t"}])
    listed, _ = await fetch(upstream, config, "/users", reply(200, users))
    assert listed.json() == [STRIPPED_USER, {"id": 8, "name": "bob"}]
    tree = {"name": "a", "x": 1, "children": [{"name": "b", "children": [{"name": "c", "y": 2}]}]}
    nested, events = await fetch(upstream, config, "/tree", reply(200, orjson.dumps(tree)))
    assert nested.json() == {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}
    assert events[0].fields["pointers"] == ["/body/x", "/body/children/0/children/0/y"]


async def test_strip_leaves_free_form_documented_and_other_responses_alone(
    upstream: Upstream,
) -> None:
    config = users_config(upstream, responses="strip")
    free = orjson.dumps({"anything": {"goes": [1]}})
    kept, events = await fetch(upstream, config, "/free", reply(200, free))
    assert kept.content == free
    exact = orjson.dumps(STRIPPED_USER).replace(b",", b", ")  # not re-encoded when nothing goes
    same, more = await fetch(upstream, config, "/users/7", reply(200, exact))
    assert same.content == exact
    text, other = await fetch(
        upstream, config, "/users/7", reply(200, b'{"password": "x"}', "text/plain")
    )
    assert text.content == b'{"password": "x"}'  # not JSON by its media type: not looked at
    assert events == more == other == []


async def test_monitor_reports_each_violation_and_passes_the_response(
    upstream: Upstream,
) -> None:
    body = orjson.dumps({"id": "seven", "password": SECRET, "profile": {"bio": 5, "github": "a"}})
    response, events = await fetch(
        upstream, users_config(upstream, responses="monitor"), "/users/7", reply(200, body)
    )
    assert response.status_code == 200
    assert response.content == body  # untouched
    assert {e.fields["pointer"]: e.reason for e in events} == {
        "/body/name": "is required",
        "/body/id": "expected integer",
        "/body/password": "is write-only; a response must not carry it",
        "/body/profile/bio": "expected string",
    }
    assert {e.action for e in events} == {"validation.response_invalid"}
    assert {e.fields["operation"] for e in events} == {"GET /users/{id}"}
    assert all(SECRET not in orjson.dumps(e.to_ecs()).decode() for e in events)


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body", "expected"),
    [
        # the exact code
        ("/users/7", 200, "application/json", {"id": 1, "name": "a"}, []),
        # 4XX for a 404 (its own media type), then default for a 202 (5xx are masked anyway)
        ("/users/7", 404, "application/problem+json", {"code": "x"}, []),
        ("/users/7", 404, "application/problem+json", {"code": 1},
         [("validation.response_invalid", "/body/code")]),
        ("/users/7", 202, "application/json", {"message": "boom"},
         [("validation.response_invalid", "/body/error")]),
        # a status or media type the document does not describe
        ("/users", 404, "application/json", {"error": "x"},
         [("validation.response_undocumented", None)]),
        ("/users/7", 200, "application/vnd.other+json", {},
         [("validation.response_undocumented", None)]),
        ("/empty", 200, "application/json", {},
         [("validation.response_undocumented", None)]),
    ],
)  # fmt: skip
async def test_the_status_picks_the_documented_response(
    upstream: Upstream,
    path: str,
    status: int,
    content_type: str,
    body: Any,
    expected: list[tuple[str, str | None]],
) -> None:
    config = users_config(upstream, responses="monitor")
    answer = reply(status, orjson.dumps(body), content_type)
    response, events = await fetch(upstream, config, path, answer)
    assert response.status_code == status
    assert [(e.action, e.fields.get("pointer")) for e in events] == expected


async def test_the_mode_is_chosen_per_route(upstream: Upstream) -> None:
    config = gateway_config(
        USERS,
        upstream.url,
        routes=[
            {"name": "users", "upstream": upstream.url, "path_prefix": "/users"},
            {"name": "rest", "upstream": upstream.url},
        ],
        validation={"enabled": True, "responses": "strip", "responses_by_route": {"rest": "off"}},
    )
    stripped, _ = await fetch(upstream, config, "/users/7", reply(200, orjson.dumps(LEAKY_USER)))
    tree = orjson.dumps({"name": "a", "x": 1})
    untouched, events = await fetch(upstream, config, "/tree", reply(200, tree))
    assert stripped.json() == STRIPPED_USER
    assert untouched.content == tree
    assert events == []


async def test_requests_still_take_write_only_and_refuse_read_only(upstream: Upstream) -> None:
    """The response copy of the document does not change how requests are checked."""
    config = users_config(upstream, responses="monitor")
    server = await start_validating_gateway(config)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            sent = await http.post("/users", json={"name": "a", "password": "p"})
            refused = await http.post("/users", json={"name": "a", "id": 1})
    finally:
        await server.shutdown(1.0)
    assert sent.status_code == 200
    assert refused.status_code == 400
    assert [s.target for s in upstream.seen] == ["/users"]


def test_unknown_routes_in_responses_by_route_are_refused() -> None:
    with pytest.raises(ValueError, match=r"validation\.responses_by_route names unknown routes"):
        gateway_config(
            USERS,
            "http://127.0.0.1:9",
            validation={"enabled": True, "responses_by_route": {"x": "strip"}},
        )


@pytest.mark.parametrize("mode", ["strip", "monitor"])
async def test_middleware_checks_the_apps_responses(mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = orjson.dumps(LEAKY_USER)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[:9], "more_body": True})
        await send({"type": "http.response.body", "body": body[9:]})

    events = MemorySink()
    middleware = BastionMiddleware(app, config_for(USERS, responses=mode), events=events)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/users/7")
    actions = [e.action for e in events.events if e.action.startswith("validation.response")]
    if mode == "strip":
        assert response.json() == STRIPPED_USER
        assert actions == ["validation.response_stripped"]
    else:
        assert response.json() == LEAKY_USER
        assert actions == ["validation.response_invalid"]  # the write-only password
