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


async def test_middleware_accepts_bastions_tokens_from_the_shared_state(tmp_path: Path) -> None:
    from bastion.auth.jwt.keystore import FileSigningKeyStore
    from bastion.auth.jwt.signing import SigningKeys

    signing = {"issuer": "https://gateway.example.test", "audiences": ["https://api.example"]}
    config = build_config(
        {
            "state_dir": str(tmp_path / "state"),
            "events": {"sink": "none"},
            "auth": {"tokens": {"signing": signing}},
        },
        "test",
    )
    manager = KeyManager(config)
    issued = manager.create("acme", scopes=("read",))
    manager.close()
    # A gateway sharing the state directory signs the token (its key store is the same files).
    gateway_keys = SigningKeys(
        FileSigningKeyStore(tmp_path / "state" / "signing-keys"), issuer=signing["issuer"]
    )
    await gateway_keys.load()
    token = gateway_keys.issue_access_token(
        subject="acme",
        client_id=issued.record.id,
        audience="https://api.example",
        scopes=("read",),
    ).token
    middleware = BastionMiddleware(app(), config)
    transport = httpx.ASGITransport(app=middleware)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.get("/whoami", headers={"authorization": f"Bearer {token}"})
            bad = await client.get("/whoami", headers={"authorization": "Bearer x.y.z"})
    finally:
        await middleware.chain.close()
    assert ok.status_code == 200
    assert ok.json()["identity"] == "acme"
    assert ok.json()["scopes"] == "read"
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer realm="bastion", error="invalid_token"'


async def test_middleware_serves_the_token_endpoint_and_jwks_itself(tmp_path: Path) -> None:
    """The client-credentials exchange and the JWKS work in middleware mode as in the gateway:
    the app never sees those requests, and the token it issues is accepted on the app's routes."""
    signing = {"issuer": "https://api.example.test", "audiences": ["https://api.example"]}
    config = build_config(
        {
            "state_dir": str(tmp_path / "state"),
            "events": {"sink": "none"},
            "auth": {"tokens": {"signing": signing}},
        },
        "test",
    )
    manager = KeyManager(config)
    issued = manager.create("acme", scopes=("read", "write"))
    manager.close()
    middleware = BastionMiddleware(app(), config)
    transport = httpx.ASGITransport(app=middleware)
    form = {"grant_type": "client_credentials", "scope": "read"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            jwks = await client.get("/.well-known/jwks.json")
            exchanged = await client.post(
                "/oauth/token", data=form, headers={"x-api-key": issued.secret}
            )
            token = exchanged.json()["access_token"]
            whoami = await client.get("/whoami", headers={"authorization": f"Bearer {token}"})
            anonymous = await client.post("/oauth/token", data=form)
    finally:
        await middleware.chain.close()
    assert jwks.status_code == 200
    assert [key["kty"] for key in jwks.json()["keys"]]
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.headers["cache-control"] == "no-store"
    assert exchanged.json()["token_type"] == "Bearer"
    assert exchanged.json()["scope"] == "read"
    assert whoami.json()["identity"] == "acme"
    assert whoami.json()["scopes"] == "read"
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"  # RFC 6749 5.2, as in the gateway
    assert issued.secret not in exchanged.text
