"""Denials become RFC 9457 problem documents with a stable code and the request id."""

from __future__ import annotations

import orjson

from bastion.errors import UpstreamTimeout
from bastion.pipeline import Deny, ProblemField, problem_response
from bastion.pipeline.problem import deny_for_error


def test_problem_response_shape() -> None:
    deny = Deny(
        400,
        "validation.body_invalid",
        "Bad Request",
        "The body does not match the schema.",
        headers=(("X-Extra", "1"),),
        errors=(ProblemField("/name", "expected a string"),),
    )
    response = problem_response(deny, "rid-7", instance="/items")
    headers = dict(response.headers)
    assert response.status == 400
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-extra"] == "1"
    assert headers["cache-control"] == "no-store"
    doc = orjson.loads(response.body)
    assert doc == {
        "type": "urn:bastion:problem:validation.body_invalid",
        "title": "Bad Request",
        "status": 400,
        "code": "validation.body_invalid",
        "request_id": "rid-7",
        "detail": "The body does not match the schema.",
        "instance": "/items",
        "errors": [{"pointer": "/name", "message": "expected a string"}],
    }


def test_errors_map_to_their_status_and_code() -> None:
    deny = deny_for_error(UpstreamTimeout("upstream 10.0.0.1:80 took 60s"))
    assert (deny.status, deny.code, deny.title) == (504, "upstream.timeout", "Gateway Timeout")
    assert "10.0.0.1" not in deny.detail
