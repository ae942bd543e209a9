"""The ``auth`` and ``routes[].auth`` configuration: secure defaults, and errors that name the
field, the value and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.config.auth import DEFAULT_QUERY_CREDENTIAL_NAMES, AuthConfig
from bastion.config.loader import build_config
from bastion.errors import ConfigError

ROUTE = {"name": "api", "upstream": "http://127.0.0.1:9000"}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build_config(data, "bastion.yaml")
    return str(caught.value)


def test_defaults() -> None:
    auth = AuthConfig()
    assert auth.default == "auto"
    assert auth.forward_credentials is False
    assert auth.api_keys.header == "x-api-key"
    assert auth.api_keys.authorization_scheme == "ApiKey"
    assert auth.api_keys.default_expiry == 90 * 86400
    assert auth.api_keys.expiry_warning == 14 * 86400
    assert auth.api_keys.refresh_interval <= 1.0
    assert {"api_key", "apikey", "access_token", "token", "key"} <= set(auth.query_credential_names)
    assert auth.query_credential_names == DEFAULT_QUERY_CREDENTIAL_NAMES
    assert auth.identity_headers.sent()["consumer"] == "x-bastion-consumer"


def test_a_full_auth_section_loads() -> None:
    config = build_config(
        {
            "auth": {
                "default": "required",
                "realm": "shop",
                "forward_credentials": True,
                "api_keys": {"header": "X-Shop-Key", "default_expiry": "30d", "pepper_file": "/p"},
                "identity_headers": {"consumer": "x-consumer-id", "tier": None},
            },
            "routes": [{**ROUTE, "auth": {"scopes": ["a"], "method_scopes": {"DELETE": ["b"]}}}],
        },
        "bastion.yaml",
    )
    assert config.auth.api_keys.header == "x-shop-key"
    assert config.auth.api_keys.default_expiry == 30 * 86400
    assert config.auth.identity_headers.sent() == {
        "consumer": "x-consumer-id",
        "key_id": "x-bastion-key-id",
        "scopes": "x-bastion-scopes",
        "method": "x-bastion-auth-method",
    }
    # inbound copies of the default names are stripped even when renamed or not sent
    assert {"x-bastion-consumer", "x-bastion-tier", "x-consumer-id"} <= (
        config.auth.identity_headers.stripped()
    )
    assert config.routes[0].auth.method_scopes == {"DELETE": ("b",)}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"auth": {"default": "sometimes"}}, "auth.default: got 'sometimes'"),
        ({"auth": {"api_keys": {"header": "authorization"}}}, "a header of your own"),
        ({"auth": {"api_keys": {"header": "bad header"}}}, "expected an HTTP header name"),
        ({"auth": {"api_keys": {"authorization_scheme": "Bearer"}}}, "not Bearer or Basic"),
        ({"auth": {"api_keys": {"default_expiry": "400d"}}}, "expected default_expiry <="),
        ({"auth": {"api_keys": {"refresh_interval": "5m"}}}, "auth.api_keys.refresh_interval"),
        ({"auth": {"api_keys": {"expiry_warning": "soon"}}}, "expected a duration"),
        ({"auth": {"realm": 'a"b'}}, "without quotes"),
        ({"auth": {"query_credential_names": ["a b"]}}, "expected letters, digits"),
        ({"auth": {"identity_headers": {"consumer": "host"}}}, "a header of your own"),
        (
            {"auth": {"identity_headers": {"consumer": "x-a", "tier": "x-a"}}},
            "identity header x-a is used twice",
        ),
        (
            {"auth": {"api_keys": {"header": "x-bastion-consumer"}}},
            "api_keys.header x-bastion-consumer is also an identity header",
        ),
        (
            {"routes": [{**ROUTE, "auth": {"require": "public", "scopes": ["a"]}}]},
            "routes[0].auth: got a mapping; require is 'public' but scopes are set",
        ),
        (
            {"routes": [{**ROUTE, "auth": {"scopes": ["has space"]}}]},
            "routes[0].auth.scopes: got a list of 1 items; scope 'has space' is not valid",
        ),
        (
            {"routes": [{**ROUTE, "auth": {"method_scopes": {"post": ["a"]}}}]},
            "got method 'post'; expected an upper-case method",
        ),
        ({"routes": [{**ROUTE, "auth": {"require": "maybe"}}]}, "routes[0].auth.require"),
        ({"auth": {"api_keys": {"bogus": 1}}}, "auth.api_keys.bogus: unknown field"),
    ],
)
def test_errors_name_field_value_and_expectation(data: dict[str, Any], expected: str) -> None:
    assert expected in problems(data)


def test_a_route_with_scopes_and_no_requirement_requires_credentials() -> None:
    from bastion.auth.requirements import RoutePolicy
    from bastion.config.auth import RouteAuthConfig

    config = build_config({"routes": [{**ROUTE, "auth": {"scopes": ["a"]}}]}, "bastion.yaml")
    assert RoutePolicy.of(config.routes[0].auth, "auto").require == "required"
    assert RoutePolicy.of(RouteAuthConfig(), "auto").require == "auto"
    assert RoutePolicy.of(RouteAuthConfig(require="public"), "required").require == "public"


def test_auth_disabled_assembles_no_guard_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from bastion.auth.assembly import auth_guards
    from bastion.observability.events import NullSink

    config = build_config({"auth": {"enabled": False}}, "bastion.yaml")
    assert auth_guards(config, NullSink()) == []
    assert "auth: disabled" in caplog.text


def test_the_default_assembles_placement_keys_and_requirements(tmp_path: object) -> None:
    from bastion.auth.assembly import auth_guards
    from bastion.observability.events import NullSink

    config = build_config({"state_dir": str(tmp_path)}, "bastion.yaml")
    guards = auth_guards(config, NullSink(), start=False)
    assert [g.name for g in guards] == ["credential_placement", "api_key", "auth_requirements"]
    assert not any(p.name == "keys.db" for p in config.state_dir.iterdir())  # never created


SIGNING = {"issuer": "https://gateway.example.test", "audiences": ["https://api.example.test"]}


def test_tokens_mount_under_auth_with_their_defaults() -> None:
    config = build_config({"auth": {"tokens": {"signing": SIGNING}}}, "test")
    tokens = config.auth.tokens
    assert tokens.signing is not None
    assert tokens.signing.resync_interval == 0.5
    assert tokens.endpoint.enabled
    assert tokens.endpoint.required_scope is None
    assert build_config({}, "test").auth.tokens.signing is None


def test_the_token_endpoint_needs_api_keys() -> None:
    with pytest.raises(ConfigError, match=r"auth\.api_keys\.enabled is false"):
        build_config(
            {"auth": {"api_keys": {"enabled": False}, "tokens": {"signing": SIGNING}}}, "test"
        )
    config = build_config(
        {
            "auth": {
                "api_keys": {"enabled": False},
                "tokens": {"signing": SIGNING, "endpoint": {"enabled": False}},
            }
        },
        "test",
    )
    assert config.auth.tokens.signing is not None


def test_required_scope_must_be_a_scope_name() -> None:
    with pytest.raises(ConfigError, match="expected a scope name"):
        build_config(
            {"auth": {"tokens": {"signing": SIGNING, "endpoint": {"required_scope": "a b"}}}},
            "test",
        )


def test_token_guard_and_endpoints_follow_the_config(tmp_path: Path) -> None:
    from bastion.auth.assembly import auth_endpoints, auth_guards
    from bastion.auth.bearer import BearerTokenGuard
    from bastion.observability.events import NullSink

    config = build_config(
        {"state_dir": str(tmp_path), "auth": {"tokens": {"signing": SIGNING}}}, "test"
    )
    guards = auth_guards(config, NullSink(), start=False)
    assert any(isinstance(g, BearerTokenGuard) for g in guards)
    routes = auth_endpoints(config, guards, NullSink())
    assert [(r.name, r.path_prefix) for r in routes] == [
        ("bastion.oauth_token", "/oauth/token"),
        ("bastion.jwks", "/.well-known/jwks.json"),
    ]
    plain = build_config({"state_dir": str(tmp_path)}, "test")
    plain_guards = auth_guards(plain, NullSink(), start=False)
    assert not any(isinstance(g, BearerTokenGuard) for g in plain_guards)
    assert auth_endpoints(plain, plain_guards, NullSink()) == []
