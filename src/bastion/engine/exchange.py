"""One request/response exchange on a client connection, and the plumbing of its request body.

The body of a request goes to exactly one place at a time: a small buffer while the exchange waits
(for its turn in a pipeline, for the guard chain, for an upstream connection), then a sink (the
upstream connection) that it streams into. When a guard or endpoint needs the body, it is
collected whole, up to ``limits.max_body_bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from bastion.pipeline.chain import GuardChain
from bastion.pipeline.forwarding import Origin
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import Route

if TYPE_CHECKING:
    from bastion.engine.protocol import ClientProtocol
    from bastion.engine.upstream import UpstreamConnection

Sink = Callable[[bytes], None]
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# A waiting exchange buffers this much of its body before the client connection stops reading.
BODY_HIGH_WATER: Final = 256 * 1024


class Exchange:
    """Request facts as parsed, the progress of the body, and the response's accounting."""

    __slots__ = (
        "accounted",
        "body_done",
        "buffered",
        "bytes_sent",
        "chain",
        "chunked",
        "chunks",
        "client",
        "collect_limit",
        "conn",
        "content_length",
        "expect_continue",
        "extra_headers",
        "forwarded_host",
        "has_body",
        "head_only",
        "headers",
        "host",
        "keep_alive",
        "method",
        "on_body_done",
        "origin",
        "outbound",
        "path",
        "query",
        "raw_host",
        "request",
        "request_id_field",
        "request_id_text",
        "response_started",
        "route",
        "sink",
        "sink_end",
        "started",
        "status",
        "task",
        "too_large",
        "upgrade",
        "upstream",
        "upstream_seconds",
        "upstream_sent",
        "version",
        "view_headers",
    )

    def __init__(self, conn: ClientProtocol, started: float) -> None:
        self.conn = conn
        # The chain this exchange is decided and completed under: a config reload swaps the
        # listener's chain for new requests, never under one in flight.
        self.chain: GuardChain = conn.ctx.chain
        self.method = b""
        self.started = started
        self.path = b"/"
        self.query = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.host = ""
        self.raw_host = b""
        self.version = "1.1"
        self.keep_alive = True
        self.chunked = False
        self.content_length = 0
        self.has_body = False  # set with chunked/content_length when the head is complete
        self.body_done = True
        self.expect_continue = False
        self.upgrade = False
        self.head_only = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.sink: Sink | None = None
        self.sink_end: Callable[[], None] | None = None
        self.collect_limit = -1
        self.too_large = False
        self.on_body_done: Callable[[], None] | None = None
        self.request: Request | None = None
        self.request_id_text = ""
        self.request_id_field = b""  # the whole "x-request-id: ...\r\n" line
        self.client: ClientAddress | None = None  # when a trusted proxy named another client
        self.view_headers: Headers | None = None
        self.route: Route | None = None
        self.upstream: UpstreamConnection | None = None
        self.upstream_sent = 0.0  # loop time the request went to the upstream
        self.upstream_seconds = -1.0  # until the upstream's response head; -1: no upstream
        self.outbound = b""
        self.extra_headers: tuple[tuple[str, str], ...] = ()
        self.status = 0
        self.accounted = True  # nothing to account for until dispatch.start
        self.task: asyncio.Task[Any] | None = None
        self.origin: Origin | None = None
        self.forwarded_host = ""
        self.bytes_sent = 0
        self.response_started = False

    @property
    def request_id(self) -> str:
        """The request id as text, taken from :attr:`request_id_field` the first time it is
        needed (a forwarded request only ever writes the field)."""
        text = self.request_id_text
        if not text and self.request_id_field:
            # The field is always "<header name>: <id>\r\n" (dispatch writes it): slicing at the
            # known offset costs less than searching for the colon.
            start = len(self.conn.ctx.request_id_header) + 2
            text = self.request_id_text = self.request_id_field[start:-2].decode("latin-1")
        return text

    @property
    def replayable(self) -> bool:
        """Whether the request may be sent again on another connection (stale pool retry)."""
        return self.method in IDEMPOTENT and not self.has_body

    def feed(self, data: bytes) -> None:
        """A piece of the request body, from the parser."""
        sink = self.sink
        if sink is not None:
            sink(data)
            return
        self.buffered += len(data)
        if self.collect_limit >= 0 and self.buffered > self.collect_limit:
            self.too_large = True
            self.chunks.clear()
            self.body_done = True
            self.conn.body_too_large(self)
            return
        if not self.too_large:
            self.chunks.append(data)
        if self.collect_limit < 0 and self.buffered > BODY_HIGH_WATER:
            self.conn.pause_for_body()

    def end(self) -> None:
        """The body is complete (the parser saw the end of the message)."""
        if self.body_done:
            return
        self.body_done = True
        if self.sink_end is not None:
            self.sink_end()
        callback = self.on_body_done
        if callback is not None:
            self.on_body_done = None
            callback()

    def attach(self, sink: Sink, sink_end: Callable[[], None]) -> None:
        """Stream the body into ``sink`` from now on, starting with what was buffered."""
        chunks, self.chunks = self.chunks, []
        self.buffered = 0
        for chunk in chunks:
            sink(chunk)
        self.sink = sink
        self.sink_end = sink_end
        if self.body_done:
            sink_end()
        self.conn.resume_for_body()

    def detach(self) -> None:
        self.sink = None
        self.sink_end = None

    def collect(self, limit: int, done: Callable[[], None]) -> None:
        """Buffer the whole body (up to ``limit`` bytes) and call ``done`` once it is complete."""
        self.collect_limit = limit
        if self.buffered > limit:
            self.too_large = True
            self.chunks.clear()
            self.conn.body_too_large(self)
            return
        self.conn.resume_for_body()
        if self.body_done:
            done()
        else:
            self.on_body_done = done

    def body(self) -> bytes:
        return b"".join(self.chunks)
