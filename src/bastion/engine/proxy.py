"""Forwarding an allowed request: the outbound head, then an upstream connection from the pool."""

from __future__ import annotations

from typing import Final

from bastion.engine.exchange import Exchange
from bastion.engine.headers import forwarding_block, request_head
from bastion.pipeline.forwarding import Origin
from bastion.pipeline.upstream_headers import UPSTREAM_HEADERS

_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
_CHUNKED: Final = b"transfer-encoding: chunked\r\n"
_EMPTY_BODY: Final = b"content-length: 0\r\n"


def forward(exchange: Exchange) -> None:
    """Build the upstream request head (one join) and hand the exchange to the pool."""
    route = exchange.route
    assert route is not None
    assert route.upstream is not None
    conn = exchange.conn
    ctx = conn.ctx
    upstream = route.upstream
    if route.path_prefix == "/" and not upstream.base_path:
        target = exchange.path
    else:
        target = route.upstream_path(exchange.path.decode("latin-1")).encode("latin-1")
    if exchange.query:
        target += b"?" + exchange.query
    collected = exchange.collect_limit >= 0
    body = b""
    if collected:
        request = exchange.request
        body = request.body if request is not None and request.body is not None else b""
        framing = b"content-length: %d\r\n" % len(body) if body or exchange.has_body else b""
    elif exchange.chunked:
        framing = _CHUNKED
    elif exchange.content_length:
        framing = b"content-length: %d\r\n" % exchange.content_length
    elif exchange.method in _BODY_METHODS:
        framing = _EMPTY_BODY
    else:
        framing = b""
    raw_host = exchange.raw_host
    if route.preserve_host and raw_host:
        host = raw_host
    else:
        host = ctx.authorities.get(id(upstream)) or ctx.authority(upstream)
    origin = exchange.origin or Origin(conn.peer.ip, ctx.scheme, None, ())
    # The forwarding block is cached per connection: raw_host is the connection's cached Host
    # value (the same object while the client repeats it), so the check is usually by identity.
    key: bytes | str = exchange.forwarded_host or raw_host
    cached = conn.forwarding_key
    if conn.forwarding_origin is not origin or (cached is not key and cached != key):
        conn.forwarding_origin = origin
        conn.forwarding_key = key
        client_host = key if isinstance(key, str) else key.decode("latin-1")
        conn.forwarding = forwarding_block(origin, conn.peer.ip, client_host)
    skip, added = ctx.request_skip, conn.forwarding
    request = exchange.request
    if request is not None:
        edits = request.state.get(UPSTREAM_HEADERS)  # identity fields (see UpstreamHeaders)
        if edits is not None:
            skip, added = edits.skip(skip), added + edits.lines
    head = request_head(
        exchange.method,
        target,
        exchange.headers,
        host,
        skip,
        added,
        exchange.request_id_field,
        framing,
        exchange.upgrade,
    )
    exchange.outbound = head + body if body else head
    pool = ctx.pool
    assert pool is not None
    pool.acquire(upstream, exchange)
