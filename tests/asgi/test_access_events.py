"""Access events in middleware mode: BastionMiddleware's event writer gets the same access
record per exchange as the gateway engine's (one line each, the documented field set), through
a real uvicorn server and a real httpx client; ``events.access: false`` keeps security events
only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bastion.asgi import BastionMiddleware
from bastion.config import build_config
from tests.asgi.apps import starlette_app
from tests.asgi.conftest import Serve
from tests.observability.helpers import check_line

SECRET = "bst_" + "s3cr3t" * 8


def events_config(tmp_path: Path, **events: Any) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "events": {
            "sink": "file",
            "path": str(tmp_path / "events.jsonl"),
            "store": {"enabled": False},
            **events,
        },
    }


def lines(tmp_path: Path, middleware: BastionMiddleware) -> list[dict[str, Any]]:
    middleware.events.close()  # type: ignore[attr-defined]  # flushes the writer thread
    path = tmp_path / "events.jsonl"
    return [check_line(line) for line in path.read_bytes().splitlines()]


def test_every_exchange_is_one_access_event(tmp_path: Path, serve: Serve) -> None:
    calls: list[str] = []
    middleware = BastionMiddleware(starlette_app(calls), build_config(events_config(tmp_path)))
    base = serve(middleware)
    with httpx.Client(base_url=base, timeout=5) as client:
        got = client.get("/orders/7", headers={"authorization": f"Bearer {SECRET}"})
        posted = client.post(f"/orders?api_key={SECRET}", content=b'{"qty": 3}')
        refused = client.get("/a/%2e%2e/b")  # an unsafe path: refused before the app
    assert got.status_code == 200
    assert refused.status_code == 400

    docs = lines(tmp_path, middleware)
    access = [d for d in docs if d["event"]["dataset"] == "bastion.access"]
    assert [
        (d["http"]["request"]["method"], d["url"]["path"], d["http"]["response"]["status_code"])
        for d in access
    ] == [
        ("GET", "/orders/7", 200),
        ("POST", "/orders", posted.status_code),
        ("GET", "/a/%2e%2e/b", 400),
    ]
    assert [d["http"]["request"]["id"] for d in access] == [
        r.headers["x-request-id"] for r in (got, posted, refused)
    ]
    first, second, third = access
    assert first["event"]["outcome"] == "success"
    assert third["event"]["outcome"] == "failure"
    assert second["http"]["request"]["body"]["bytes"] == len(b'{"qty": 3}')
    assert first["http"]["response"]["bytes"] == len(got.content)
    assert {d["bastion"]["route"] for d in access} == {"app"}
    assert all(d["source"]["ip"] == "127.0.0.1" for d in access)
    assert all(d["event"]["duration"] > 0 for d in access)
    text = (tmp_path / "events.jsonl").read_text()
    assert SECRET not in text
    assert "api_key" not in text  # no query string ever reaches an event
    # The security events are still there, beside the access events.
    assert any(d["event"]["dataset"] == "bastion.security" for d in docs)


def test_events_access_false_keeps_security_events_only(tmp_path: Path, serve: Serve) -> None:
    config = build_config(events_config(tmp_path, access=False))
    middleware = BastionMiddleware(starlette_app([]), config)
    base = serve(middleware)
    with httpx.Client(base_url=base, timeout=5) as client:
        assert client.get("/orders/7").status_code == 200
        assert client.get("/a/%2e%2e/b").status_code == 400
    docs = lines(tmp_path, middleware)
    assert [d["event"]["dataset"] for d in docs] == ["bastion.security"]
