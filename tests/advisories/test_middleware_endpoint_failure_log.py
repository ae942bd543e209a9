"""Regression: when one of bastion's own endpoints failed in middleware mode, the log line carried
the exception's traceback, whose text can quote what the client sent (a client secret in the
token endpoint's form). The line now names the failure by type only, as the gateway's does."""

from __future__ import annotations

import logging

import pytest

from bastion.asgi.middleware import BastionMiddleware
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.response import Response

SECRET = "bst_leaked0000_secretsecretsecretsecretsecretsecret00"


class Failing:
    requires_body = True

    async def __call__(self, request: Request) -> Response:
        raise ValueError(f"could not parse client_secret={SECRET}")


async def test_a_failing_endpoint_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    request = Request(
        method="POST",
        path="/oauth/token",
        query="",
        headers=Headers([]),
        client=ClientAddress("192.0.2.1", 5000),
        request_id="r1",
    )
    with caplog.at_level(logging.ERROR, logger="bastion.asgi"):
        response = await BastionMiddleware._call_endpoint(Failing(), request)
    assert response.status == 500
    assert b"gateway.internal_error" in response.body
    assert SECRET not in response.body.decode()
    assert "bastion endpoint failed" in caplog.text
    assert SECRET not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)
