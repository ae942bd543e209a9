"""The client side of the engine: one :class:`ClientProtocol` per accepted TCP connection.

It parses requests with llhttp (httptools), applies the checks llhttp leaves to its caller
(:mod:`bastion.engine.http11`), and keeps pipelined requests in a bounded queue that is answered
strictly in order: only the exchange at the head of the queue is dispatched; the others wait with
their bodies buffered up to a high-water mark, past which the connection stops reading.

Anything refused here is answered with a problem+json and ``connection: close`` before a guard or
an upstream sees it, and is counted in :meth:`TrafficStats.protocol_error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Final, cast

import httptools

from bastion.engine import dispatch
from bastion.engine.context import EngineContext
from bastion.engine.exchange import Exchange
from bastion.engine.headers import REQUEST_NAMES
from bastion.engine.http11 import (
    Refusal,
    check_host,
    inspect_fields,
    parser_refusal,
    refuse,
    split_target,
)
from bastion.engine.responses import refusal_bytes
from bastion.observability.events import SecurityEvent
from bastion.pipeline.forwarding import Origin, new_request_id
from bastion.pipeline.request import ClientAddress, TLSInfo

logger = logging.getLogger("bastion.engine")

_PAUSE_QUEUE: Final = 1
_PAUSE_BODY: Final = 2
_PAUSE_HALT: Final = 4
_PAUSE_TUNNEL: Final = 8
_PAUSE_UPSTREAM: Final = 16
_MAX_NESTED_STARTS: Final = 8


def tls_info(ssl_object: Any) -> TLSInfo:
    """What the handshake of a TLS connection established. The client certificate is there
    only when it was verified (OpenSSL fails the handshake on one it cannot verify); the
    server name is the one the SNI callback noted (see :mod:`bastion.tls.server`)."""
    cipher = ssl_object.cipher()
    peer = ssl_object.getpeercert(True)
    return TLSInfo(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        server_name=getattr(ssl_object, "bastion_server_name", None),
        alpn=ssl_object.selected_alpn_protocol(),
        client_cert_der=peer if peer else None,
    )


class ClientProtocol(asyncio.Protocol):
    """Parses, queues and answers the requests of one client connection."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ClientAddress("", 0)
        self.tls: TLSInfo | None = None
        self.queue: deque[Exchange] = deque()
        self.active: Exchange | None = None
        self.current: Exchange | None = None
        self.last_parsed: Exchange | None = None
        self.deadline = 0.0
        self.paused = 0
        self.writing_paused = False
        self.closed = False
        self.halted = False  # no further request will be read (refusal, upgrade, close)
        self.refusal: Refusal | None = None
        self.dispatch_after_feed = False
        self._depth = 0
        # Per-connection caches: most connections repeat the same Host and forwarding facts.
        self.host_value = b""
        self.host_name = ""
        self.forwarding_origin: Origin | None = None
        self.forwarding_key: bytes | str = b""
        self.forwarding = b""
        self.untrusted_origin: Origin | None = None
        self.tunnel_peer: asyncio.Transport | None = None
        self.tunnel_pending: list[bytes] = []
        self.host_raw = b""
        self._url = b""
        self._header_bytes = 0
        self._head_fed = 0
        self._head_limit = ctx.max_request_line + ctx.max_header_bytes + 1024
        self._header_read = ctx.header_read
        self._max_request_line = ctx.max_request_line
        self._max_header_bytes = ctx.max_header_bytes
        self._max_headers = ctx.max_headers

    # -- connection lifecycle ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        ctx = self.ctx
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = ClientAddress(str(peer[0]), int(peer[1]))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = tls_info(ssl_object)
        ctx.connections.add(self)
        ctx.reaper.members.add(self)
        ctx.stats.connections_open += 1
        ctx.stats.connections_total += 1
        self.deadline = ctx.loop.time() + ctx.header_read

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        ctx = self.ctx
        ctx.connections.discard(self)
        ctx.reaper.members.discard(self)
        ctx.stats.connections_open -= 1
        if ctx.drained is not None and not ctx.connections:
            ctx.drained.set()
        if self.tunnel_peer is not None:
            self.tunnel_peer.close()
        active = self.active
        if active is not None:
            self.active = None
            dispatch.client_gone(active)

    def eof_received(self) -> bool | None:
        """The client closed its side. Like nginx, bastion takes that as the client leaving: the
        exchange in flight is abandoned (recorded as 499) rather than finished for nobody."""
        if self.tunnel_peer is not None and self.tunnel_peer.can_write_eof():
            self.tunnel_peer.write_eof()
            return True
        return None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection (RST): a response that cannot be completed must not look complete."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def on_deadline(self) -> None:
        current = self.current
        if current is not None:
            code = "request.header_timeout" if current.status == 0 else "request.body_timeout"
            self._refuse(refuse(408, code, "The request was not received in time."))
            return
        if self.writing_paused and self.active is not None:
            self.ctx.stats.protocol_error("response.send_timeout")
            self.abort()
            return
        if self.active is None and not self.queue:
            self.close()

    # -- flow control --------------------------------------------------------------------------

    def _pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def pause_for_body(self) -> None:
        self._pause(_PAUSE_BODY)
        self.deadline = 0.0

    def resume_for_body(self) -> None:
        if self.paused & _PAUSE_BODY:
            self._resume(_PAUSE_BODY)
            self._reading_again()

    def pause_for_upstream(self) -> None:
        """The upstream's socket buffer is full: stop reading the client until it drains."""
        self._pause(_PAUSE_UPSTREAM)
        self.deadline = 0.0

    def resume_for_upstream(self) -> None:
        if self.paused & _PAUSE_UPSTREAM:
            self._resume(_PAUSE_UPSTREAM)
            self._reading_again()

    def _reading_again(self) -> None:
        if not self.paused and self.current is not None:
            self.deadline = self.ctx.loop.time() + self.ctx.body_read

    def pause_writing(self) -> None:
        self.writing_paused = True
        active = self.active
        if active is not None and active.upstream is not None:
            active.upstream.pause_reading()
        if self.tunnel_peer is not None:
            self.tunnel_peer.pause_reading()
        self.deadline = self.ctx.loop.time() + self.ctx.idle

    def resume_writing(self) -> None:
        self.writing_paused = False
        active = self.active
        if active is not None and active.upstream is not None:
            active.upstream.resume_reading()
        if self.tunnel_peer is not None:
            self.tunnel_peer.resume_reading()
        if self.current is None:
            self.deadline = 0.0

    # -- parsing -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.tunnel_peer is not None:
            self.tunnel_peer.write(data)
            return
        if self.halted:
            if self.active is not None and self.active.upgrade:
                self.tunnel_pending.append(data)
                self._pause(_PAUSE_TUNNEL)
            return
        while True:
            in_head = self.current is None or self.current.status == 0
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                data = data[upgrade.args[0] :]
                if self._upgraded(data) and data:
                    continue  # not a WebSocket: go on parsing what followed, with a new parser
            except httptools.HttpParserCallbackError as exc:
                refusal = exc.__context__
                if not isinstance(refusal, Refusal):
                    logger.error("request parsing failed", exc_info=refusal)
                    refusal = refuse(
                        500, "gateway.internal_error", "The request could not be handled."
                    )
                self._refuse(refusal)
            except httptools.HttpParserError as exc:
                self._refuse(parser_refusal(exc))
            else:
                if in_head and self.current is not None and self.current.status == 0:
                    self._head_fed += len(data)
                    if self._head_fed > self._head_limit:
                        self._refuse(
                            refuse(
                                431, "request.headers_too_large", "The request head is too large."
                            )
                        )
            break
        if self.dispatch_after_feed:
            self.dispatch_after_feed = False
            active = self.active
            if active is not None and not self.closed:
                dispatch.start(active)

    def on_message_begin(self) -> None:
        now = self.ctx.loop.time()
        self.current = Exchange(self, now)
        self._url = b""
        self._header_bytes = 0
        self._head_fed = 0
        self.deadline = now + self._header_read

    def on_url(self, url: bytes) -> None:
        if self._url:  # the target arrived in pieces (bounded by max_request_line)
            url = self._url + url
        self._url = url
        if len(url) + 16 > self._max_request_line:
            raise refuse(414, "request.uri_too_long", "The request line is too long.")

    def on_header(self, name: bytes, value: bytes) -> None:
        current = self.current
        assert current is not None
        size = self._header_bytes + len(name) + len(value) + 4
        self._header_bytes = size
        if size > self._max_header_bytes:
            raise refuse(431, "request.headers_too_large", "The header section is too large.")
        if current.status:
            return  # a trailer field: never forwarded
        headers = current.headers
        if len(headers) >= self._max_headers:
            raise refuse(
                431, "request.headers_too_large", "The request has too many header fields."
            )
        lowered = REQUEST_NAMES.get(name)
        headers.append((lowered if lowered is not None else name.lower(), value))

    def on_headers_complete(self) -> None:
        current = self.current
        assert current is not None
        parser = self.parser
        method = parser.get_method()
        current.method = method
        current.head_only = method == b"HEAD"
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise refuse(505, "request.version_not_supported", "Only HTTP/1.1 and 1.0 are served.")
        if method == b"CONNECT":
            raise refuse(400, "request.invalid_target", "CONNECT is not served.")
        current.version = version
        current.path, current.query = split_target(self._url)
        host = inspect_fields(current, version)
        if host is not None:
            if host != self.host_value:
                self.host_name = check_host(host)
                self.host_value = host
                self.host_raw = host.strip()
            current.host = self.host_name
            current.raw_host = self.host_raw
        elif version == "1.1":
            raise refuse(400, "request.invalid_host", "HTTP/1.1 requests need a Host field.")
        if current.upgrade:
            current.upgrade = parser.should_upgrade()  # needs Connection: upgrade
        current.keep_alive = parser.should_keep_alive()
        current.status = -1  # head complete; the response status is not known yet
        ctx = self.ctx
        if current.chunked or current.content_length > 0:
            current.has_body = True
            current.body_done = False
            self.deadline = ctx.loop.time() + ctx.body_read
        else:
            self.deadline = 0.0
        if self.active is None and not self.queue:
            self.active = current
            self.dispatch_after_feed = True  # unless the rest of this packet breaks framing
        else:
            self.queue.append(current)
            if len(self.queue) >= ctx.max_pipelined:
                self._pause(_PAUSE_QUEUE)

    def on_body(self, body: bytes) -> None:
        current = self.current
        assert current is not None
        self.deadline = self.ctx.loop.time() + self.ctx.body_read
        current.feed(body)

    def on_message_complete(self) -> None:
        current = self.current
        if current is None:
            return
        self.current = None
        self.last_parsed = current
        if self.active is None and not self.queue:
            self.deadline = self.ctx.loop.time() + self.ctx.idle
        else:
            self.deadline = 0.0
        current.end()

    def _upgraded(self, rest: bytes) -> bool:
        """llhttp stopped after a request announcing an upgrade (the message itself is complete).

        A WebSocket handshake halts parsing (the rest is tunnel data for later); any other
        upgrade (h2c, ...) is served as a plain request: the answer is whether to go on parsing
        ``rest`` with a fresh parser.
        """
        last = self.last_parsed
        if last is not None and last.upgrade:
            self.halted = True
            if rest:
                self.tunnel_pending.append(rest)
                self._pause(_PAUSE_TUNNEL)
            return False
        self.parser = httptools.HttpRequestParser(self)
        return True

    # -- answering -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def send_local(self, exchange: Exchange, body_and_head: bytes, status: int) -> None:
        exchange.status = status
        exchange.response_started = True
        exchange.bytes_sent += len(body_and_head)
        self.write(body_and_head)
        self.finish(exchange)

    def body_too_large(self, exchange: Exchange) -> None:
        self.ctx.stats.protocol_error("request.body_too_large")
        exchange.keep_alive = False
        self.halted = True
        dispatch.deny_body_too_large(exchange)

    def finish(self, exchange: Exchange, now: float = 0.0) -> None:
        """The response of the active exchange is complete: account for it, then go on.

        ``now`` is the loop time if the caller has just read it."""
        if not now:
            now = self.ctx.loop.time()
        dispatch.completed(exchange, now)
        if self.active is exchange:
            self.active = None
        if self.closed:
            return
        reusable = exchange.keep_alive and exchange.body_done and not self.ctx.draining
        if not reusable:
            self.halted = True
            self.queue.clear()
            self.close()
            return
        if self.paused & _PAUSE_QUEUE:
            self._resume(_PAUSE_QUEUE)
        if self.queue:
            self.active = self.queue.popleft()
            if self._depth < _MAX_NESTED_STARTS:
                # Answers bastion gives itself finish synchronously, so starting the next
                # pipelined exchange here nests; past a few levels, go through the loop instead.
                self._depth += 1
                try:
                    dispatch.start(self.active)
                finally:
                    self._depth -= 1
            else:
                self.ctx.loop.call_soon(self._start_later, self.active)
        elif self.refusal is not None:
            self._answer_refusal(self.refusal)
        elif self.halted:
            self.close()
        elif self.current is None:
            self.deadline = now + self.ctx.idle

    def _start_later(self, exchange: Exchange) -> None:
        if not self.closed and self.active is exchange:
            dispatch.start(exchange)

    @property
    def closing(self) -> bool:
        """No request after the current one will be served (the refusal, if any, goes last)."""
        return self.halted and self.refusal is None

    def _refuse(self, refusal: Refusal) -> None:
        """Stop reading; answer the refusal once the exchanges before it are answered."""
        self.halted = True
        self._pause(_PAUSE_HALT)
        ctx = self.ctx
        ctx.stats.protocol_error(refusal.refusal_code)
        refusal.request_id = new_request_id()
        ctx.chain.events.emit(
            SecurityEvent(
                action=refusal.refusal_code,
                outcome="failure",
                timestamp=time.time(),
                guard="engine",
                request_id=refusal.request_id,
                client_ip=self.peer.ip,
                status=refusal.refusal_status,
                reason=refusal.message,
            )
        )
        if (
            self.current is not None
            and self.current.status != 0
            and (self.current is self.active or self.current in self.queue)
        ):
            # The head was accepted and dispatched; the body then broke framing.
            broken = self.current
            self.current = None
            broken.keep_alive = False
            if broken is self.active and broken.response_started:
                self.abort()
                return
            if broken in self.queue:
                self.queue.remove(broken)
            elif broken is self.active:
                self.dispatch_after_feed = False
                dispatch.cancel(broken)
                broken.status = refusal.refusal_status
                dispatch.completed(broken)
                self.active = None
        self.current = None
        if self.active is None and not self.queue:
            self._answer_refusal(refusal)
        else:
            self.refusal = refusal

    def _answer_refusal(self, refusal: Refusal) -> None:
        if self.transport is None or self.closed:
            return
        self.write(refusal_bytes(self.ctx, refusal))
        self.close()

    def send_continue(self, exchange: Exchange) -> None:
        if exchange.expect_continue and not exchange.body_done:
            exchange.expect_continue = False
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def start_tunnel(self, peer: asyncio.Transport) -> None:
        """Relay bytes both ways from now on (a WebSocket after the upstream's 101)."""
        self.tunnel_peer = peer
        self.deadline = 0.0
        pending, self.tunnel_pending = self.tunnel_pending, []
        for chunk in pending:
            peer.write(chunk)
        self.paused = 0
        if self.transport is not None:
            self.transport.resume_reading()
