"""Advisory: credentials sent over plain HTTP. The credential crossed the network in clear
(an eavesdropper has it), so the plain listener never forwards it, never redirects it (the client
would send it again), refuses it with 403 ``tls.credentials_over_http`` under both policies,
never echoes it, and records a security event naming where the credential was (so the operator
knows what to rotate), never its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import head_and_body, raw, status_of
from tests.engine.upstream_app import Upstream
from tests.tls.test_plain_http import get, plain_config, plain_listener


@pytest.mark.parametrize(
    ("extra", "target", "where"),
    [
        ("authorization: Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig\r\n", "/", "authorization"),
        ("x-api-key: bst_secretsecretsecret\r\n", "/", "x-api-key"),
        ("cookie: session=abcdef\r\n", "/", "cookie"),
        ("proxy-authorization: Basic dTpw\r\n", "/", "proxy-authorization"),
        ("", "/orders?access_token=abcdef", "query:accesstoken"),
        ("", "/orders?API-KEY=abcdef", "query:apikey"),
    ],
)
@pytest.mark.parametrize("policy", ["refuse", "redirect"])
async def test_credentials_over_plain_http_are_refused_and_logged(
    upstream: Upstream, tmp_path: Path, policy: str, extra: str, target: str, where: str
) -> None:
    server, events = await plain_listener(plain_config(upstream, tmp_path, policy))
    try:
        response = await raw(server.port, get(target, extra))
    finally:
        await server.shutdown(1.0)
    assert status_of(response) == 403
    fields, body = head_and_body(response)
    assert b'"code":"tls.credentials_over_http"' in body
    assert "location" not in fields  # never redirected: the client would send it again
    event = events.events[-1]
    assert event.action == "tls.credentials_over_http"
    assert event.outcome == "failure"
    assert event.fields["credential"] == where
    text = repr(event.to_ecs())
    for secret in ("eyJhbGciOiJFUzI1NiJ9", "bst_secret", "abcdef", "dTpw"):
        assert secret not in text
        assert secret.encode() not in response
    assert upstream.seen == []
