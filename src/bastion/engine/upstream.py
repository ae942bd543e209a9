"""One keep-alive connection to an upstream, and the response side of a proxied exchange.

One :class:`UpstreamConnection` carries one exchange at a time (no upstream pipelining). A
connection goes back to the pool only after a complete exchange: response fully read, request
body fully sent, both sides willing to keep the connection alive. A pooled connection may have
been closed by the upstream meanwhile; if such a reused connection fails before a single response
byte arrived, an idempotent request without a body is sent once more on a fresh connection.

Once a response head has reached the client, an upstream failure aborts the client connection, so
a truncated response never looks complete (no final chunk, no early close on a known length
that a client could take for the end).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final, cast

import httptools

from bastion.engine import dispatch
from bastion.engine.exchange import Exchange
from bastion.engine.headers import ResponseScan, field_bytes, scan_response
from bastion.engine.protocol import ClientProtocol
from bastion.engine.responses import CHUNKED, local_response_bytes, proxied_head
from bastion.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from bastion.pipeline.decisions import Deny
from bastion.pipeline.problem import problem_response, reason_phrase
from bastion.pipeline.response_body import RESPONSE_BODY, UNPROCESSABLE, BodyRewrite

if TYPE_CHECKING:
    from bastion.engine.pool import UpstreamPool

PoolKey = tuple[str, str, int]
_LAST_CHUNK: Final = b"0\r\n\r\n"
_IDENTITY: Final = frozenset({b"", b"identity"})

logger = logging.getLogger("bastion.engine")


def _field(parts: list[bytes], name: bytes) -> bytes | None:
    """The value of the field ``name`` among a scanned head's encoded groups (see
    :func:`scan_response`), or ``None``."""
    for i in range(1, len(parts) - 2, 4):
        if parts[i] == name:
            return parts[i + 2]
    return None


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream; parses its responses with llhttp."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self.pool = pool
        self.ctx = pool.ctx
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.deadline = 0.0
        self.closed = False
        self.reused = False
        self.skip = pool.ctx.response_skip
        self.names = pool.ctx.response_names
        self.tunnel = False
        self.sent_all = True
        self.out: list[bytes] = []  # response bytes of one read, written to the client at once
        self._begin_exchange()

    def _begin_exchange(self) -> None:
        """Reset everything that belongs to one exchange: the one place a field is added, so
        nothing of a previous response (a mask, a framing, a half-read head) leaks into the next
        one on a reused connection."""
        self.received = False
        self.head_sent = False
        self.masked = False
        self.interim = False
        self.chunked_out = False
        self.until_close = False
        # The fields of the response head being read, sorted by on_header (see scan_response).
        self.parts: list[bytes] = [b""]
        self.special: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.fed = 0
        # A response a guard rewrites (RESPONSE_BODY): held whole, its head sent at the end.
        self.rewrite: BodyRewrite | None = None
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.held_scan: ResponseScan | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ctx.reaper.members.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.reaper.members.discard(self)
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is None:
            return
        if self.tunnel:
            exchange.conn.close()
            return
        if self.head_sent and self.until_close and exc is None:
            if self.rewrite is not None:  # a held body that ends at the close: it is whole now
                self._release_held()
            elif self.chunked_out:
                exchange.conn.write(_LAST_CHUNK)
            self._complete(reusable=False)  # a clean close is the end of this response
            return
        self._failed(UpstreamProtocolError("the upstream closed the connection"))

    def eof_received(self) -> bool | None:
        if self.tunnel and self.exchange is not None:
            transport = self.exchange.conn.transport
            if transport is not None and transport.can_write_eof():
                transport.write_eof()
                return True
        return None

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abandon(self) -> None:
        """The client is gone mid-exchange: this connection's state is unknown, so it closes."""
        self.exchange = None
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def on_deadline(self) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # idle in the pool for too long
            return
        self._failed(UpstreamTimeout("the upstream did not answer in time"), retry=False)
        if self.transport is not None:
            self.transport.abort()

    # -- request side --------------------------------------------------------------------------

    def send(self, exchange: Exchange, *, reused: bool) -> None:
        transport = self.transport
        assert transport is not None
        self.exchange = exchange
        exchange.upstream = self
        self.reused = reused
        self._begin_exchange()
        ctx = self.ctx
        streaming = exchange.has_body and exchange.collect_limit < 0
        self.sent_all = not streaming
        now = exchange.upstream_sent = ctx.loop.time()
        # Waiting for the response head starts once the request is sent; while a body streams,
        # the client's body_read deadline paces it (and pause_writing watches the upstream).
        self.deadline = 0.0 if streaming else now + ctx.upstream_response
        transport.write(exchange.outbound)
        if streaming:
            exchange.conn.send_continue(exchange)
            if exchange.chunked:
                exchange.attach(self._write_chunk, self._write_last_chunk)
            else:
                exchange.attach(transport.write, self._body_sent)

    def _write_chunk(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def _write_last_chunk(self) -> None:
        if self.transport is not None:
            self.transport.write(_LAST_CHUNK)
        self._body_sent()

    def _body_sent(self) -> None:
        self.sent_all = True
        if not self.head_sent:
            self.deadline = self.ctx.loop.time() + self.ctx.upstream_response

    def pause_writing(self) -> None:
        """The upstream does not take the request body as fast as the client sends it."""
        if self.exchange is not None:
            self.exchange.conn.pause_for_upstream()
            if not self.head_sent:  # an upstream that stops reading for good is cut off
                self.deadline = self.ctx.loop.time() + self.ctx.upstream_read

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.resume_for_upstream()
            if not self.head_sent and not self.sent_all:
                self.deadline = 0.0

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()
            if self.head_sent:
                self.deadline = 0.0

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
            if self.head_sent and self.exchange is not None:
                self.deadline = self.ctx.loop.time() + self.ctx.upstream_read

    # -- response side -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if self.tunnel:
            if exchange is not None:
                exchange.conn.write(data)
            return
        if exchange is None:
            self.close()  # bytes nobody asked for: this connection is not to be trusted
            return
        self.received = True
        self.fed = self.header_bytes + len(data)
        conn = exchange.conn
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadDone):
                return
            self._failed(UpstreamProtocolError("invalid response"), retry=False)
            self.close()
        except httptools.HttpParserError:
            self._failed(UpstreamProtocolError("invalid response"), retry=False)
            self.close()
        if self.out:
            self._flush(conn)
        if self.exchange is not exchange:
            return  # complete (possibly already carrying the client's next request)
        if self.head_sent:  # the longest pause allowed in a body counts from this read
            self.deadline = self.ctx.loop.time() + self.ctx.upstream_read
        else:  # everything read so far belongs to a head that is still incomplete
            self.header_bytes += len(data)
            if self.header_bytes > self.ctx.max_upstream_header_bytes:
                self._failed(UpstreamProtocolError("response head too large"), retry=False)
                self.close()

    def _flush(self, conn: ClientProtocol) -> None:
        """One write per upstream read: head, body and final chunk often travel together."""
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not conn.closed:
            conn.write(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Sort each field as it arrives: most are passed on as they are, already encoded;
        the ones bastion rewrites or withholds are kept aside for scan_response."""
        known = self.names.get(name)
        if known is not None:
            name, special = known
        else:
            name = name.lower()
            special = name in self.skip
        if special:
            self.special.append((name, value))
        else:
            parts = self.parts
            parts.append(name)
            parts.append(b": ")
            parts.append(value)
            parts.append(b"\r\n")

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue and friends are for this hop only
            self.parts = [b""]
            self.special = []
            self.header_bytes = 0
            return
        ctx = self.ctx
        if self.fed > ctx.max_upstream_header_bytes and (
            field_bytes(self.parts, self.special) > ctx.max_upstream_header_bytes
        ):  # counted only when this read could hold a head that large
            raise UpstreamProtocolError("response head too large")
        conn = exchange.conn
        if status == 101:
            self.interim = True  # answered in _upgraded, once llhttp hands over the connection
            return
        scan = scan_response(self.parts, self.special, ctx.response_skip, upgrade=False)
        if scan.other_coding:  # e.g. "gzip, chunked": its framing would be lost in the rewrite
            raise UpstreamProtocolError("unsupported transfer coding")
        exchange.status = status
        exchange.response_started = True
        exchange.upstream_seconds = ctx.loop.time() - exchange.upstream_sent
        self.head_sent = True
        length = scan.length
        chunked = scan.chunked
        no_body = exchange.head_only or status in (204, 304)
        self.until_close = not no_body and length is None and not chunked
        if status >= 500 and ctx.mask_errors:
            self.masked = True
            deny = Deny(
                status, "upstream.error", reason_phrase(status), "The upstream service failed."
            )
            ctx.stats.upstream_error(
                exchange.route.name if exchange.route else "-", "upstream.error"
            )
            data = local_response_bytes(
                ctx, exchange, problem_response(deny, exchange.request_id), exchange.request_id
            )
            exchange.bytes_sent += len(data)
            self.out.append(data)
            if exchange.head_only:
                self._head_answered(scan)
            return
        if ctx.body_rewrites and not no_body and self._hold(exchange, scan):
            return
        self.chunked_out = False
        if no_body:
            framing = (
                b"content-length: " + length + b"\r\n"
                if length is not None and status != 204
                else b""
            )
        elif length is not None:
            framing = b"content-length: " + length + b"\r\n"
        elif exchange.version == "1.1":
            framing = CHUNKED
            self.chunked_out = True
        else:
            framing = b""
            exchange.keep_alive = False  # an HTTP/1.0 client learns the end from the close
        close = not exchange.keep_alive or not exchange.body_done or ctx.draining or conn.closing
        if close:
            exchange.keep_alive = False
        head = proxied_head(ctx, exchange, status, scan, framing=framing, close=close)
        exchange.bytes_sent += len(head)
        self.out.append(head)
        if exchange.head_only:
            self._head_answered(scan)

    def _hold(self, exchange: Exchange, scan: ResponseScan) -> bool:
        """Keep this response back when a guard asked to rewrite its body (and can read it:
        an encoded body passes through as it is)."""
        request = exchange.request
        rewrite = request.state.get(RESPONSE_BODY) if request is not None else None
        if rewrite is None:
            return False
        coding = _field(scan.parts, b"content-encoding")
        if coding is not None and coding.strip().lower() not in _IDENTITY:
            return False
        exchange.response_started = False  # nothing has reached the client yet
        self.rewrite = rewrite
        self.held_scan = scan
        return True

    def _held_body(self, body: bytes) -> None:
        self.held_bytes += len(body)
        if self.held_bytes > self.ctx.max_body:
            self._unprocessable("response body over limits.max_body_bytes")
            return
        self.held.append(body)

    def _unprocessable(self, why: str) -> None:
        """A held response that cannot be rewritten: the client gets a 502 problem instead, and
        whatever of the upstream's body is still to come is read and dropped."""
        exchange = self.exchange
        assert exchange is not None
        route = exchange.route.name if exchange.route else "-"
        logger.warning("upstream response on route %s not rewritten: %s", route, why)
        self.rewrite = None
        self.held = []
        self.masked = True
        self.ctx.stats.upstream_error(route, UNPROCESSABLE.code)
        exchange.status = UNPROCESSABLE.status
        exchange.response_started = True
        data = local_response_bytes(
            self.ctx,
            exchange,
            problem_response(UNPROCESSABLE, exchange.request_id),
            exchange.request_id,
        )
        exchange.bytes_sent += len(data)
        self.out.append(data)

    def _release_held(self) -> None:
        """The held response, rewritten, with its head (and a Content-Length) in front."""
        exchange = self.exchange
        rewrite, scan = self.rewrite, self.held_scan
        assert exchange is not None
        assert rewrite is not None
        assert scan is not None
        body = b"".join(self.held)
        content_type = _field(scan.parts, b"content-type")
        try:
            new = rewrite(
                exchange.status, None if content_type is None else content_type.decode(), body
            )
        except Exception as exc:
            self._unprocessable(f"the rewrite failed ({type(exc).__name__})")
            return
        self.rewrite = None
        self.held = []
        if new is not None:
            body = new
        ctx, conn = self.ctx, exchange.conn
        close = not exchange.keep_alive or not exchange.body_done or ctx.draining or conn.closing
        if close:
            exchange.keep_alive = False
        exchange.response_started = True
        framing = b"content-length: %d\r\n" % len(body)
        head = proxied_head(ctx, exchange, exchange.status, scan, framing=framing, close=close)
        exchange.bytes_sent += len(head) + len(body)
        self.out.append(head)
        self.out.append(body)

    def _head_answered(self, scan: ResponseScan) -> None:
        """llhttp does not know a response answers HEAD and would wait for its body: stop it."""
        self.parser = httptools.HttpResponseParser(self)
        self._complete(reusable=not scan.close)
        raise _HeadDone

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None or self.masked:
            return
        if self.rewrite is not None:
            self._held_body(body)
            return
        exchange.bytes_sent += len(body)
        if self.chunked_out:
            self.out.append(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.exchange is None:
            return
        if self.rewrite is not None:
            self._release_held()
        elif self.chunked_out:
            self.out.append(_LAST_CHUNK)
        self._complete(reusable=self.parser.should_keep_alive())

    def _complete(self, *, reusable: bool) -> None:
        exchange = self.exchange
        assert exchange is not None
        self.exchange = None
        exchange.upstream = None
        exchange.sink = exchange.sink_end = None
        self.deadline = 0.0
        out = self.out
        conn = exchange.conn
        if out:  # _flush, inlined: the usual end of every proxied exchange
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            transport = conn.transport
            if transport is not None and not conn.closed:
                transport.write(data)
        now = self.ctx.loop.time()
        if reusable and self.sent_all and not self.closed and exchange.body_done:
            self.pool.release(self, now)
        else:
            self.close()
        conn.finish(exchange, now)

    def _upgraded(self, rest: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        assert self.transport is not None
        if self.parser.get_status_code() != 101 or not exchange.upgrade:
            self._failed(UpstreamProtocolError("unexpected upgrade"), retry=False)
            self.close()
            return
        ctx = self.ctx
        exchange.status = 101
        exchange.response_started = True
        self.head_sent = True
        scan = scan_response(self.parts, self.special, ctx.response_skip, upgrade=True)
        head = proxied_head(ctx, exchange, 101, scan, framing=b"", close=False, upgrade=True)
        conn = exchange.conn
        conn.write(head)
        if rest:
            conn.write(rest)
        self.tunnel = True
        self.deadline = 0.0
        dispatch.completed(exchange)
        if conn.active is exchange:
            conn.active = None
        conn.start_tunnel(self.transport)

    def _failed(self, error: UpstreamError, *, retry: bool = True) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        exchange.upstream = None
        exchange.detach()
        self.deadline = 0.0
        if self.rewrite is not None:  # a held response: nothing reached the client yet
            self.rewrite = None
            self.held = []
            self.out.clear()
            dispatch.upstream_failed(exchange, error)
            return
        if self.head_sent or exchange.response_started:
            self.out.clear()
            self.ctx.stats.upstream_error(
                exchange.route.name if exchange.route else "-", error.code
            )
            exchange.conn.abort()
            return
        if retry and self.reused and not self.received and exchange.replayable:
            route = exchange.route
            assert route is not None
            assert route.upstream is not None
            self.pool.acquire(route.upstream, exchange, fresh=True)
            return
        dispatch.upstream_failed(exchange, error)


class _HeadDone(Exception):
    """Stops llhttp after the head of a response to HEAD (see ``on_headers_complete``)."""
