"""Dot segments (raw or percent-encoded) could be resolved by an upstream after guards matched
the raw path, reaching routes the guards never saw: such paths get 400 ``request.invalid_path``."""

from __future__ import annotations

import orjson
import pytest

from tests.engine.helpers import head_and_body, make_config, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(b"/api/../admin", id="dot_dot_segment"),
        pytest.param(b"/api/./admin", id="dot_segment"),
        pytest.param(b"/..", id="trailing_dot_dot"),
        pytest.param(b"/api/%2e%2e/admin", id="percent_encoded_dot_dot"),
        pytest.param(b"/api/%2E./admin", id="mixed_case_encoded_dot_dot"),
        pytest.param(b"/api/.%2e/admin", id="half_encoded_dot_dot"),
        pytest.param(b"/api/%2e/admin", id="percent_encoded_dot"),
        pytest.param(b"/api/..%2fadmin", id="encoded_slash_dot_dot"),
        pytest.param(b"/api/..\\admin", id="backslash_dot_dot"),
        pytest.param(b"/api/..%5cadmin", id="encoded_backslash_dot_dot"),
        pytest.param(b"/api/%00/x", id="encoded_nul"),
    ],
)
async def test_path_with_dot_segments_refused(upstream: Upstream, path: bytes) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(gw.port, b"GET " + path + b"?q=1 HTTP/1.1\r\nHost: api\r\n\r\n")
    await gw.shutdown(1)
    assert status_of(response) == 400
    fields, body = head_and_body(response)
    assert orjson.loads(body)["code"] == "request.invalid_path"
    assert fields["connection"] == "close"
    assert upstream.seen == []


@pytest.mark.parametrize("path", [b"/a.b/c..d/.well-known/x", b"/files/v1.2.3", b"/a/%2e%2ex"])
async def test_dots_inside_segments_are_fine(upstream: Upstream, path: bytes) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(
        gw.port, b"GET " + path + b" HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    )
    await gw.shutdown(1)
    assert status_of(response) == 200
    assert upstream.seen[-1].target == path.decode()
