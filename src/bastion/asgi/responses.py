"""The response side of middleware mode: what every response leaving the app (or bastion) gets.

:class:`ResponseFinisher` holds the per-app rules (request-id header, ``nosniff``, no ``Server`` /
``X-Powered-By`` banner unless configured, guards' response hooks, counting). An
:class:`HTTPExchange` or :class:`WebSocketExchange` wraps one ``send`` callable, applies those rules
to the messages passing through, and knows when the exchange is complete, so that completion
hooks and the traffic counters see every exchange exactly once, including failed ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

from bastion.asgi.types import Message, Send
from bastion.config.models import BastionConfig
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import Deny
from bastion.pipeline.problem import problem_response, reason_phrase
from bastion.pipeline.request import Request
from bastion.pipeline.response import Response
from bastion.pipeline.response_body import RESPONSE_BODY, UNPROCESSABLE, BodyRewrite

RawHeaderList = list[tuple[bytes, bytes]]
HeaderPairs = tuple[tuple[str, str], ...]

STATS_ROUTE: Final = "app"
AccessHook = Callable[[Request, int, int, float], None]
"""(request, status, bytes sent, seconds): the access event of a finished exchange."""
"""The ``route`` label of middleware traffic: the app is the one destination."""

CLIENT_CLOSED: Final = 499
"""Status counted for an exchange the client abandoned before it was answered (as nginx does)."""

APP_FAILED_DETAIL: Final = "The application could not answer this request."

_BANNERS = frozenset({b"server", b"x-powered-by"})
_NOSNIFF = b"x-content-type-options"
_HSTS = b"strict-transport-security"
_IDENTITY = frozenset({b"", b"identity"})

logger = logging.getLogger("bastion.asgi")
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def app_failed(status: int, headers: HeaderPairs = ()) -> Deny:
    """The problem a client sees instead of an application error: no stack trace, no text."""
    return Deny(status, "upstream.error", reason_phrase(status), APP_FAILED_DETAIL, headers=headers)


class ResponseFinisher:
    """The response rules of one middleware instance, applied to every exchange."""

    __slots__ = (
        "_completion_hooks",
        "_hsts",
        "_id_header",
        "_response_hooks",
        "_server",
        "access",
        "chain",
        "max_body",
        "stats",
    )

    def __init__(self, config: BastionConfig, chain: GuardChain, stats: TrafficStats) -> None:
        self.chain = chain
        self.stats = stats
        self.access: AccessHook | None = None  # set by the middleware when access events are on
        self._id_header = config.proxy.request_id_header.encode("latin-1")
        server = config.responses.server_header
        self._server = server.encode("latin-1") if server else None
        hsts = config.tls.hsts
        self._hsts = hsts.header_value().encode("ascii") if hsts.enabled else None
        self.max_body = config.limits.max_body_bytes
        self._response_hooks = any(callable(getattr(g, "on_response", None)) for g in chain.guards)
        self._completion_hooks = any(
            callable(getattr(g, "on_complete", None)) for g in chain.guards
        )

    def headers(
        self,
        raw: Iterable[tuple[bytes, bytes]],
        status: int,
        request: Request,
        added: HeaderPairs = (),
    ) -> RawHeaderList:
        """``raw`` without banners, plus the request id, ``nosniff``, the guards' headers.

        The request id is always bastion's (an app's own would break the link between the
        response, the problem body and the security events), as in gateway mode; ``nosniff`` is
        added unless the app set ``X-Content-Type-Options``; the ``Server`` banner is the
        configured one or none. Response hooks see the result as ``str`` pairs (decoded only when
        some guard has a hook).
        """
        out: RawHeaderList = []
        has_nosniff = False
        # Over HTTPS (the ASGI server terminated TLS), bastion's HSTS field replaces the app's,
        # as the engine's does an upstream's.
        hsts = self._hsts if request.scheme == "https" else None
        for name, value in raw:
            lowered = name.lower()
            if lowered in _BANNERS or lowered == self._id_header:
                continue
            if hsts is not None and lowered == _HSTS:
                continue
            if lowered == _NOSNIFF:
                has_nosniff = True
            out.append((name, value))
        out.append((self._id_header, request.request_id.encode("latin-1")))
        if not has_nosniff:
            out.append((_NOSNIFF, b"nosniff"))
        if self._server is not None:
            out.append((b"server", self._server))
        if hsts is not None:
            out.append((_HSTS, hsts))
        for added_name, added_value in added:
            out.append((added_name.lower().encode("latin-1"), added_value.encode("latin-1")))
        if self._response_hooks:
            pairs = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in out]
            self.chain.on_response(request, status, pairs)
            out = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in pairs]
        return out

    def count(self, request: Request, status: int, seconds: float) -> None:
        """One exchange in the traffic counters; unknown methods pooled so labels stay few."""
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        self.stats.record(STATS_ROUTE, method, status, seconds)

    def completed(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        if self._completion_hooks:
            self.chain.on_complete(request, status, bytes_sent, seconds)

    def complete(self, request: Request, status: int, bytes_sent: int, started_at: float) -> None:
        seconds = time.perf_counter() - started_at
        self.count(request, status, seconds)
        self.completed(request, status, bytes_sent, seconds)
        if self.access is not None:  # the access event, as the engine's completed() emits it
            self.access(request, status, bytes_sent, seconds)


class HTTPExchange:
    """One HTTP request/response through the middleware; :meth:`send` is what the app calls.

    ``started`` turns true as soon as a response head is on its way: from then on, an error can
    only abort the connection. With ``mask`` set, a 5xx head from the app is answered at once with
    a complete problem response, and the app's own body for it is dropped.
    """

    __slots__ = (
        "_send",
        "added",
        "bytes_sent",
        "complete",
        "finisher",
        "held",
        "held_bytes",
        "held_start",
        "mask",
        "masked",
        "request",
        "rewrite",
        "started",
        "started_at",
        "status",
        "trailers",
    )

    def __init__(
        self,
        finisher: ResponseFinisher,
        request: Request,
        send: Send,
        started_at: float,
        *,
        mask: bool,
    ) -> None:
        self.finisher = finisher
        self.request = request
        self._send = send
        self.started_at = started_at
        self.mask = mask
        self.added: HeaderPairs = ()
        self.status = 0
        self.bytes_sent = 0
        self.started = False
        self.complete = False
        self.masked = False
        self.trailers = False
        self.rewrite: BodyRewrite | None = None
        self.held_start: Message | None = None
        self.held: list[bytes] = []
        self.held_bytes = 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status: int = message["status"]
            raw = message.get("headers", ())
            if self.mask and status >= 500:
                self.masked = True
                retry = tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in raw
                    if name.lower() == b"retry-after"
                )
                await self.respond(
                    problem_response(app_failed(status, retry), self.request.request_id)
                )
                return
            if self._hold(message, raw):
                return
            self.status = status
            self.started = True
            self.trailers = bool(message.get("trailers", False))
            message = dict(message)
            message["headers"] = self.finisher.headers(raw, status, self.request, self.added)
            await self._send(message)
        elif self.masked:
            return  # the app's own error body: already replaced
        elif kind == "http.response.body" and self.rewrite is not None:
            await self._held_body(message)
        elif kind == "http.response.body":
            self.bytes_sent += len(message.get("body", b""))
            await self._send(message)
            if not message.get("more_body", False) and not self.trailers:
                self._completed()
        elif kind == "http.response.trailers":
            await self._send(message)
            if not message.get("more_trailers", False):
                self._completed()
        elif kind in ("http.response.pathsend", "http.response.zerocopysend"):
            await self._send(message)
            if kind == "http.response.pathsend" or not message.get("more_body", False):
                self._completed()
        else:
            await self._send(message)

    def _hold(self, start: Message, raw: Iterable[tuple[bytes, bytes]]) -> bool:
        """Keep the response back when a guard asked to rewrite its body (see
        :mod:`bastion.pipeline.response_body`); an encoded body or one with trailers passes."""
        rewrite = self.request.state.get(RESPONSE_BODY)
        if rewrite is None or start.get("trailers", False) or self.request.method == "HEAD":
            return False
        for name, value in raw:
            if name.lower() == b"content-encoding" and value.strip().lower() not in _IDENTITY:
                return False
        self.rewrite = rewrite
        self.held_start = start
        return True

    async def _held_body(self, message: Message) -> None:
        chunk: bytes = message.get("body", b"")
        self.held_bytes += len(chunk)
        if self.held_bytes > self.finisher.max_body:
            await self._unprocessable("response body over limits.max_body_bytes")
            return
        self.held.append(chunk)
        if message.get("more_body", False):
            return
        start, rewrite = self.held_start, self.rewrite
        assert start is not None
        assert rewrite is not None
        body = b"".join(self.held)
        status: int = start["status"]
        raw = [(n, v) for n, v in start.get("headers", ()) if n.lower() != b"content-length"]
        content_type = next((v for n, v in raw if n.lower() == b"content-type"), None)
        try:
            new = rewrite(status, None if content_type is None else content_type.decode(), body)
        except Exception as exc:
            await self._unprocessable(f"the rewrite failed ({type(exc).__name__})")
            return
        self.rewrite = None
        self.held = []
        if new is not None:
            body = new
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        self.status = status
        self.started = True
        head = dict(start)
        head["headers"] = self.finisher.headers(raw, status, self.request, self.added)
        await self._send(head)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        self.bytes_sent += len(body)
        self._completed()

    async def _unprocessable(self, why: str) -> None:
        logger.warning("app response not rewritten: %s", why)
        self.rewrite = None
        self.held = []
        self.masked = True  # the rest of the app's body is dropped
        await self.respond(problem_response(UNPROCESSABLE, self.request.request_id))

    async def respond(self, response: Response) -> None:
        """Send a complete response of bastion's own (a denial, a masked or failed answer)."""
        body = response.body
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        self.status = response.status
        self.started = True
        head = {
            "type": "http.response.start",
            "status": response.status,
            "headers": self.finisher.headers(raw, response.status, self.request, self.added),
        }
        await self._send(head)
        if self.request.method == "HEAD":
            body = b""
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        self.bytes_sent += len(body)
        self._completed()

    def _completed(self) -> None:
        if not self.complete:
            self.complete = True
            self.finisher.complete(self.request, self.status, self.bytes_sent, self.started_at)

    def client_left(self) -> None:
        self.status = CLIENT_CLOSED

    def finish(self) -> None:
        """Account for an exchange that ended without completing (app error, disconnect)."""
        if not self.complete:
            self.complete = True
            status = self.status or 500
            self.finisher.complete(self.request, status, self.bytes_sent, self.started_at)


class WebSocketExchange:
    """One WebSocket session: the handshake answer gets the response rules, the frames do not.

    Counted once, when the handshake is answered (``101`` accepted, ``403`` closed before accept,
    or the status of a denial response), with the handshake time as latency; completion hooks run
    when the session ends.
    """

    __slots__ = ("_send", "added", "answered", "finisher", "request", "started_at", "status")

    def __init__(
        self, finisher: ResponseFinisher, request: Request, send: Send, started_at: float
    ) -> None:
        self.finisher = finisher
        self.request = request
        self._send = send
        self.started_at = started_at
        self.added: HeaderPairs = ()
        self.status = 0
        self.answered = False

    async def send(self, message: Message) -> None:
        if not self.answered:
            kind = message["type"]
            if kind == "websocket.accept":
                message = self._with_headers(message, 101)
            elif kind == "websocket.http.response.start":
                message = self._with_headers(message, int(message["status"]))
            elif kind == "websocket.close":
                self._answer(403)
        await self._send(message)

    async def refuse(self, deny: Deny, denial_response: bool) -> None:
        """Refuse the handshake: a problem response where the server can send one, else 1008."""
        if denial_response:
            response = problem_response(deny, self.request.request_id)
            raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
            raw.append((b"content-length", str(len(response.body)).encode("latin-1")))
            await self.send(
                {"type": "websocket.http.response.start", "status": deny.status, "headers": raw}
            )
            await self._send({"type": "websocket.http.response.body", "body": response.body})
        else:
            self._answer(deny.status)
            await self._send({"type": "websocket.close", "code": 1008, "reason": deny.code})

    def _with_headers(self, message: Message, status: int) -> Message:
        message = dict(message)
        raw = message.get("headers", ())
        message["headers"] = self.finisher.headers(raw, status, self.request, self.added)
        self._answer(status)
        return message

    def _answer(self, status: int) -> None:
        self.status = status
        self.answered = True
        self.finisher.count(self.request, status, self._elapsed())

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started_at

    def client_left(self) -> None:
        self._answer(CLIENT_CLOSED)

    def finish(self) -> None:
        """Count an unanswered handshake as a failure; run completion hooks for the session."""
        if not self.answered:
            self._answer(500)
        self.finisher.completed(self.request, self.status, 0, self._elapsed())
