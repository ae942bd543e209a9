"""Requirements from the OpenAPI document's ``security`` sections, with config overrides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.auth.openapi import compile_operations
from bastion.errors import ConfigError
from bastion.store import MemoryKeyStore
from tests.auth.helpers import AuthGateway, FakeClock, auth_config
from tests.auth.tokens_helpers import AUDIENCE, ISSUER, token_for, token_gateway
from tests.engine.upstream_app import Upstream

OK = {"200": {"description": "ok"}}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "orders", "version": "1"},
    "servers": [{"url": "https://api.example.com/v1"}],
    "security": [{"bearer": ["orders:read"]}],
    "paths": {
        "/health": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
        "/orders": {
            "get": {"responses": {"200": {"description": "ok"}}},
            "post": {
                "security": [{"bearer": ["orders:write"]}, {"key": ["orders:write"]}],
                "responses": {"201": {"description": "ok"}},
            },
        },
        "/orders/{id}": {
            "get": {"security": [{}, {"bearer": []}], "responses": OK},
            "delete": {"security": [{"key": ["admin"]}], "responses": OK},
        },
        "/orders/latest": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
        "/legacy": {"get": {"security": [{"basic": []}], "responses": OK}},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "basic": {"type": "http", "scheme": "basic"},
        }
    },
}


def test_operations_compile_with_the_server_base_path() -> None:
    table = compile_operations(DOCUMENT)
    assert table.lookup("GET", "/v1/health").require == "public"  # type: ignore[union-attr]
    listing = table.lookup("GET", "/v1/orders")
    assert listing is not None
    assert listing.require == "required"
    assert [(a.methods, a.scopes) for a in listing.any_of] == [
        (frozenset({"jwt", "oidc"}), frozenset({"orders:read"}))
    ]
    assert table.lookup("GET", "/v1/orders/7").require == "optional"  # type: ignore[union-attr]
    # a concrete path wins over a template that also matches it
    assert table.lookup("GET", "/v1/orders/latest").require == "public"  # type: ignore[union-attr]
    assert table.lookup("HEAD", "/v1/health").require == "public"  # type: ignore[union-attr]
    assert table.lookup("GET", "/v1/unknown") is None
    assert table.lookup("GET", "/health") is None  # outside the server's base path
    assert table.lookup("PATCH", "/v1/orders") is None


def test_an_operation_without_security_anywhere_is_not_in_the_table() -> None:
    document = {**DOCUMENT, "security": None}
    del document["security"]
    table = compile_operations(document)
    assert table.lookup("GET", "/v1/orders") is None


def test_schemes_bastion_cannot_check_accept_any_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = compile_operations(DOCUMENT)
    legacy = table.lookup("GET", "/v1/legacy")
    assert legacy is not None
    assert legacy.any_of[0].methods is None
    assert "'basic' (http) is not one bastion checks" in caplog.text


def test_a_malformed_security_section_is_a_config_error() -> None:
    document = {**DOCUMENT, "security": {"bearer": []}}
    with pytest.raises(ConfigError, match="security is not a list"):
        compile_operations(document)


@pytest.fixture
async def gateway(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
) -> AsyncIterator[AuthGateway]:
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    config = auth_config(
        upstream.url,
        routes=[
            {
                "name": "override",
                "upstream": upstream.url,
                "path_prefix": "/v1/orders/99",
                "auth": {"require": "public"},
            },
            {"name": "api", "upstream": upstream.url},
        ],
        openapi=str(path),
        state_dir=str(tmp_path),
        auth={"tokens": {"signing": {"issuer": ISSUER, "audiences": [AUDIENCE]}}},
    )
    gw = await token_gateway(config, memory_store, hasher, clock)
    yield gw
    await gw.close()


async def status(gateway: AuthGateway, method: str, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        return await client.request(method, path, headers=headers)


async def test_the_document_decides_per_operation(gateway: AuthGateway, keys: KeyManager) -> None:
    reader = keys.create("reader", scopes=("orders:read", "orders:write"))
    admin = keys.create("admin", scopes=("admin",))
    gateway.refresh()
    token = await token_for(gateway, reader.record.id, reader.secret)
    bearer = {"authorization": f"Bearer {token}"}
    assert (await status(gateway, "GET", "/v1/health")).status_code == 200
    assert (await status(gateway, "GET", "/v1/orders/3")).status_code == 200  # optional
    missing = await status(gateway, "GET", "/v1/orders")
    assert missing.status_code == 401
    assert missing.json()["code"] == "auth.missing_credentials"
    assert (await status(gateway, "GET", "/v1/orders", **bearer)).status_code == 200
    # GET /orders accepts bearer tokens only: an API key is the wrong kind of credential
    wrong_kind = await status(gateway, "GET", "/v1/orders", **{"x-api-key": reader.secret})
    assert wrong_kind.status_code == 401
    assert wrong_kind.json()["code"] == "auth.credential_not_accepted"
    assert gateway.last("auth.credential_not_accepted").fields["operation"] == "GET /orders"
    # POST accepts either, with orders:write
    assert (await status(gateway, "POST", "/v1/orders", **bearer)).status_code == 200
    key_post = await status(gateway, "POST", "/v1/orders", **{"x-api-key": reader.secret})
    assert key_post.status_code == 200
    # DELETE needs a key with admin
    no_scope = await status(gateway, "DELETE", "/v1/orders/3", **{"x-api-key": reader.secret})
    assert no_scope.status_code == 403
    assert no_scope.json()["code"] == "auth.insufficient_scope"
    assert gateway.last("auth.insufficient_scope").fields["missing_scopes"] == ["admin"]
    ok = await status(gateway, "DELETE", "/v1/orders/3", **{"x-api-key": admin.secret})
    assert ok.status_code == 200


async def test_a_route_with_its_own_auth_overrides_the_document(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    keys.create("reader")
    gateway.refresh()
    assert (await status(gateway, "DELETE", "/v1/orders/99")).status_code == 200
    assert (await status(gateway, "DELETE", "/v1/orders/98")).status_code == 401


async def test_paths_the_document_does_not_describe_fall_back_to_the_route(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    assert (await status(gateway, "GET", "/elsewhere")).status_code == 200  # no key yet: auto
    keys.create("reader")
    gateway.refresh()
    assert (await status(gateway, "GET", "/elsewhere")).status_code == 401


async def test_openapi_security_false_ignores_the_document(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
    keys: KeyManager,
) -> None:
    from tests.auth.helpers import start_auth_gateway

    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    config = auth_config(
        upstream.url, openapi=str(path), auth={"default": "public", "openapi_security": False}
    )
    gw = await start_auth_gateway(config, memory_store, hasher, clock)
    try:
        keys.create("reader")
        gw.refresh()
        assert (await status(gw, "GET", "/v1/orders")).status_code == 200
    finally:
        await gw.close()
