"""The same API-key guard in front of an ASGI app (``BastionMiddleware``): the app receives the
identity as headers and in the request view, never a client's copy; 401 and 403 as in the
gateway. The store is the real SQLite one the CLI writes."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI, Request

from bastion.asgi import BastionMiddleware, request_view
from bastion.auth.keys.manager import KeyManager
from bastion.config.loader import build_config
from bastion.pipeline.identity import IDENTITY


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/whoami")
    async def whoami(request: Request) -> dict[str, object]:
        view = request_view(request.scope)
        identity = view.state.get(IDENTITY) if view is not None else None
        return {
            "header": request.headers.get("x-bastion-consumer"),
            "scopes": request.headers.get("x-bastion-scopes"),
            "identity": identity.consumer if identity is not None else None,
            "key_header": request.headers.get("x-api-key"),
        }

    return api


async def test_middleware_authenticates_with_the_cli_store(tmp_path: Path) -> None:
    config = build_config(
        {"state_dir": str(tmp_path / "state"), "events": {"sink": "none"}}, "test"
    )
    manager = KeyManager(config)
    issued = manager.create("acme", scopes=("read",))
    manager.close()
    middleware = BastionMiddleware(app(), config)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.get(
            "/whoami", headers={"x-api-key": issued.secret, "x-bastion-consumer": "root"}
        )
        missing = await client.get("/whoami", headers={"x-bastion-consumer": "root"})
        in_query = await client.get(f"/whoami?api_key={issued.secret}")
    assert ok.status_code == 200
    assert ok.json() == {
        "header": "acme",
        "scopes": "read",
        "identity": "acme",
        "key_header": None,
    }
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'ApiKey realm="bastion"'
    assert in_query.status_code == 400
    assert in_query.json()["code"] == "auth.credentials_in_query"
