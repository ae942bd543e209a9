# ruff: noqa: E501  (one case per line: the table reads best unwrapped)
"""Request smuggling and desynchronisation: every ambiguous request is refused before any byte of it
reaches an upstream, answered with a problem+json and ``connection: close``.

One regression test per weakness (ids name it). The first group is refused by llhttp itself; the
tests pin that, so an httptools upgrade that loosened the parser would fail here.
"""

from __future__ import annotations

import orjson
import pytest

from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from tests.engine.helpers import head_and_body, make_config, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream

H = b"POST / HTTP/1.1\r\nHost: api\r\n"

CASES: list[tuple[str, bytes, int, str]] = [
    ("cl_te_conflict", H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("te_cl_conflict", H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("duplicate_content_length_same", H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, "request.malformed"),
    ("duplicate_content_length_different", H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400, "request.malformed"),
    ("content_length_list", H + b"Content-Length: 1, 1\r\n\r\nx", 400, "request.malformed"),
    ("content_length_signed", H + b"Content-Length: +1\r\n\r\nx", 400, "request.malformed"),
    ("content_length_hex", H + b"Content-Length: 0x1\r\n\r\nx", 400, "request.malformed"),
    ("te_chunked_not_final", H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("te_gzip_then_chunked", H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "request.unsupported_transfer_coding"),
    ("te_identity", H + b"Transfer-Encoding: identity\r\n\r\n", 501, "request.unsupported_transfer_coding"),
    ("te_xchunked", H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, "request.unsupported_transfer_coding"),
    ("te_duplicate_field", H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("te_space_before_colon", H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("te_vertical_tab", H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400, "request.malformed"),
    ("te_on_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request.invalid_framing"),
    ("obsolete_line_folding", b"GET / HTTP/1.1\r\nHost: api\r\nX-A: b\r\n c\r\n\r\n", 400, "request.malformed"),
    ("bare_lf_line_ending", b"GET / HTTP/1.1\nHost: api\n\n", 400, "request.malformed"),
    ("bare_cr_in_header", b"GET / HTTP/1.1\r\nHost: api\rX: y\r\n\r\n", 400, "request.malformed"),
    ("nul_in_header_value", b"GET / HTTP/1.1\r\nHost: api\r\nX: a\x00b\r\n\r\n", 400, "request.malformed"),
    ("control_char_in_header_value", b"GET / HTTP/1.1\r\nHost: api\r\nX: a\x01b\r\n\r\n", 400, "request.malformed"),
    ("invalid_header_name", b"GET / HTTP/1.1\r\nHost: api\r\nX(y): a\r\n\r\n", 400, "request.malformed"),
    ("empty_header_name", b"GET / HTTP/1.1\r\nHost: api\r\n: a\r\n\r\n", 400, "request.malformed"),
    ("invalid_chunk_size", H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400, "request.malformed"),
    ("chunk_size_overflow", H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nab\r\n0\r\n\r\n", 400, "request.malformed"),
    ("chunk_size_trailing_space", H + b"Transfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n", 400, "request.malformed"),
    ("chunk_lf_only", H + b"Transfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n", 400, "request.malformed"),
    ("chunk_data_overrun", H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n", 400, "request.malformed"),
    ("multiple_host_headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "request.invalid_host"),
    ("missing_host_http11", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "request.invalid_host"),
    ("invalid_host_value", b"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", 400, "request.invalid_host"),
    ("absolute_form_target", b"GET http://internal/ HTTP/1.1\r\nHost: api\r\n\r\n", 400, "request.invalid_target"),
    ("asterisk_form_target", b"OPTIONS * HTTP/1.1\r\nHost: api\r\n\r\n", 400, "request.invalid_target"),
    ("connect_method", b"CONNECT internal:443 HTTP/1.1\r\nHost: internal:443\r\n\r\n", 400, "request.invalid_target"),
    ("scheme_relative_target", b"GET //evil/x HTTP/1.1\r\nHost: api\r\n\r\n", 400, "request.invalid_target"),
    ("fragment_in_target", b"GET /a#b HTTP/1.1\r\nHost: api\r\n\r\n", 400, "request.invalid_target"),
    ("http09_request", b"GET /\r\n\r\n", 505, "request.version_not_supported"),
    ("http2_version_over_http1", b"GET / HTTP/2.0\r\nHost: api\r\n\r\n", 505, "request.version_not_supported"),
    ("unknown_http_version", b"GET / HTTP/1.2\r\nHost: api\r\n\r\n", 505, "request.version_not_supported"),
    ("unknown_method", b"FOO / HTTP/1.1\r\nHost: api\r\n\r\n", 501, "request.method_not_implemented"),
    ("unknown_expectation", b"GET / HTTP/1.1\r\nHost: api\r\nExpect: 200-ok\r\n\r\n", 417, "request.expectation_failed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [pytest.param(data, status, code, id=name) for name, data, status, code in CASES],
)
async def test_smuggling_variant_refused_before_upstream(
    upstream: Upstream, request_bytes: bytes, status: int, code: str
) -> None:
    stats = TrafficStats()
    gw = await start_gateway(make_config(upstream.url), stats=stats)
    response = await raw(gw.port, request_bytes)
    await gw.shutdown(1)
    assert status_of(response) == status, response
    fields, body = head_and_body(response)
    assert fields["connection"] == "close"
    assert fields["content-type"] == "application/problem+json"
    problem = orjson.loads(body)
    assert problem["code"] == code
    assert stats.protocol_errors == {code: 1}
    events = gw.chain.events
    assert isinstance(events, MemorySink)
    assert events.actions() == [code]  # one security event per refusal
    # The client's report, the response header and the log line share one request id.
    assert problem["request_id"] == fields["x-request-id"] == events.events[0].request_id
    assert upstream.seen == []
    assert upstream.connections == 0


async def test_smuggled_request_after_refusal_never_parsed(upstream: Upstream) -> None:
    """A refused request with a hidden second request in its 'body' ends the connection."""
    gw = await start_gateway(make_config(upstream.url))
    attack = (
        H + b"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nHost: api\r\n\r\n"
    )
    response = await raw(gw.port, attack)
    await gw.shutdown(1)
    assert response.count(b"HTTP/1.1 ") == 1
    assert upstream.seen == []


async def test_refusal_after_valid_pipelined_request_answers_valid_first(
    upstream: Upstream,
) -> None:
    gw = await start_gateway(make_config(upstream.url))
    data = (
        b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
        + H
        + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )
    response = await raw(gw.port, data)
    await gw.shutdown(1)
    assert response.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 400" in response
    assert [seen.target for seen in upstream.seen] == ["/ok"]


async def test_trailer_fields_are_not_forwarded(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    data = (
        H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"1\r\na\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil\r\n\r\n"
    )
    response = await raw(gw.port, data)
    await gw.shutdown(1)
    assert status_of(response) == 200
    seen = upstream.seen[-1]
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert b"6.6.6.6" not in seen.body
