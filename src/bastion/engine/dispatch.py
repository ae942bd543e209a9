"""What happens to a parsed request: request view, guard chain, then a local endpoint or the proxy.

Everything here runs as plain callbacks; a Task exists only when a guard or an endpoint actually
waits (``GuardChain.decide`` answers synchronously while its guards do), so a forwarded request
with synchronous guards costs no coroutine at all.
"""

from __future__ import annotations

import asyncio
import logging
from time import time
from typing import Final

from bastion.engine.exchange import Exchange
from bastion.engine.proxy import forward
from bastion.engine.responses import local_response_bytes
from bastion.errors import UpstreamError, describe
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny
from bastion.pipeline.forwarding import Origin
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.problem import deny_for_error, problem_response, reason_phrase
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.response import Endpoint, Response
from bastion.pipeline.routing import NO_ROUTE, ROUTE

logger = logging.getLogger("bastion.engine")

INTERNAL_ERROR: Final = Deny(500, "gateway.internal_error", "Internal Server Error")
BODY_TOO_LARGE: Final = Deny(
    413, "request.body_too_large", "Content Too Large", "The request body exceeds the limit."
)
_METHODS: Final[dict[bytes, str]] = {}


def _method_text(method: bytes) -> str:
    text = _METHODS.get(method)
    if text is None:
        text = _METHODS[method] = method.decode("ascii")
    return text


def resolve(exchange: Exchange) -> None:
    """Who sent ``exchange``, on which host, under which request id: forwarding headers and an
    inbound request id are believed from trusted proxies only (see ``ForwardingPolicy``)."""
    conn = exchange.conn
    ctx = conn.ctx
    peer = conn.peer
    policy = ctx.policy
    if ctx.trusts_anyone and policy.is_trusted(peer.ip):
        headers = exchange.view_headers = Headers(exchange.headers)
        origin = policy.origin(
            peer.ip,
            ctx.scheme,
            x_forwarded_for=headers.get_all("x-forwarded-for"),
            forwarded=headers.get_all("forwarded"),
            x_forwarded_proto=headers.get("x-forwarded-proto"),
            x_forwarded_host=headers.get("x-forwarded-host"),
        )
        request_id = policy.request_id(peer.ip, headers.get(ctx.request_id_name))
        if origin.host:
            exchange.forwarded_host = origin.host
            exchange.host = _host_name(origin.host)
        if origin.client_ip != peer.ip:
            exchange.client = ClientAddress(origin.client_ip, 0)
        exchange.origin = origin
        exchange.request_id_text = request_id
        exchange.request_id_field = ctx.request_id_header + b": " + request_id.encode() + b"\r\n"
        return
    untrusted = conn.untrusted_origin
    if untrusted is None:
        untrusted = conn.untrusted_origin = Origin(peer.ip, ctx.scheme, None, ())
    exchange.origin = untrusted
    # A new id (see new_request_id), written as bytes; its text is derived only when needed.
    exchange.request_id_field = ctx.new_request_id_field()


def _host_name(authority: str) -> str:
    authority = authority.lower()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.partition(":")[0]


def build_request(exchange: Exchange) -> Request:
    """The guards' view of ``exchange`` (after :func:`resolve`)."""
    conn = exchange.conn
    origin = exchange.origin
    assert origin is not None
    headers = exchange.view_headers
    return Request(
        method=_method_text(exchange.method),
        path=exchange.path.decode("latin-1"),
        query=exchange.query.decode("latin-1"),
        headers=headers if headers is not None else Headers(exchange.headers),
        client=exchange.client or conn.peer,
        peer=conn.peer,
        scheme=origin.scheme,
        host=exchange.host,
        http_version=exchange.version,
        tls=conn.tls,
        request_id=exchange.request_id,
    )


def start(exchange: Exchange) -> None:
    """Dispatch the exchange at the head of its connection's queue."""
    conn = exchange.conn
    ctx = conn.ctx
    ctx.stats.in_flight += 1
    exchange.accounted = False
    exchange.chain = ctx.chain
    try:
        untrusted = conn.untrusted_origin
        if untrusted is not None:  # the peer is not a trusted proxy: resolve() in short
            exchange.origin = untrusted
            exchange.request_id_field = ctx.new_request_id_field()
        else:
            resolve(exchange)
        route = ctx.fixed_route
        if route is not None:  # a router with one catch-all route (see below)
            exchange.route = route
            forward(exchange)
            return
        router = ctx.router_only
        if router is not None:
            # The chain is the router alone: matching directly decides exactly as the chain
            # would (an allow records no event), without a request view or a coroutine.
            route = router.match(exchange.host, exchange.path.decode("latin-1"))
            if route is not None and route.upstream is not None:
                exchange.route = route
                forward(exchange)
                return
        exchange.request = build_request(exchange)
    except Exception:
        logger.exception("dispatching a request failed")
        respond_deny(exchange, INTERNAL_ERROR)
        return
    if exchange.chain.requires_body and exchange.has_body:
        exchange.conn.send_continue(exchange)
        exchange.collect(ctx.max_body, lambda: _run_chain(exchange))
    else:
        _run_chain(exchange)


def _run_chain(exchange: Exchange) -> None:
    if exchange.too_large:
        return
    request = exchange.request
    assert request is not None
    if exchange.collect_limit >= 0:
        request.body = exchange.body()
    chain = exchange.chain
    if chain.empty:
        _decided(exchange, ALLOW)
        return
    try:
        result = chain.decide(request)
        if not isinstance(result, (Allow, Deny)):
            # A guard waits (Redis, a key fetch): the rest of the chain runs as a Task.
            task = exchange.conn.ctx.loop.create_task(result)
            task.add_done_callback(lambda done: _chain_done(exchange, done))
            exchange.task = task
            return
    except Exception:
        logger.exception("the guard chain failed")
        respond_deny(exchange, INTERNAL_ERROR)
        return
    _decided(exchange, result)


def _chain_done(exchange: Exchange, task: asyncio.Task[Decision]) -> None:
    exchange.task = None
    if task.cancelled() or exchange.conn.closed:
        return
    error = task.exception()
    if error is not None:
        logger.error("the guard chain failed: %s", describe(error))
        respond_deny(exchange, INTERNAL_ERROR)
        return
    _decided(exchange, task.result())


def _decided(exchange: Exchange, decision: Decision) -> None:
    if isinstance(decision, Deny):
        respond_deny(exchange, decision)
        return
    exchange.extra_headers = decision.headers
    request = exchange.request
    assert request is not None
    route = request.state.get(ROUTE)
    if route is None:
        respond_deny(exchange, NO_ROUTE)
        return
    exchange.route = route
    endpoint = route.endpoint
    if endpoint is not None:
        if endpoint.requires_body and exchange.has_body and exchange.collect_limit < 0:
            exchange.conn.send_continue(exchange)
            exchange.collect(exchange.conn.ctx.max_body, lambda: _call_endpoint(exchange, endpoint))
        else:
            _call_endpoint(exchange, endpoint)
        return
    forward(exchange)


def _call_endpoint(exchange: Exchange, endpoint: Endpoint) -> None:
    if exchange.too_large:
        return
    request = exchange.request
    assert request is not None
    if exchange.collect_limit >= 0 and request.body is None:
        request.body = exchange.body()
    task = exchange.conn.ctx.loop.create_task(endpoint(request))
    exchange.task = task
    task.add_done_callback(lambda done: _endpoint_done(exchange, done))


def _endpoint_done(exchange: Exchange, task: asyncio.Task[Response]) -> None:
    exchange.task = None
    if task.cancelled() or exchange.conn.closed:
        return
    error = task.exception()
    if error is not None:
        logger.error("endpoint failed: %s", describe(error))
        respond_deny(exchange, INTERNAL_ERROR)
        return
    respond(exchange, task.result())


def respond(exchange: Exchange, response: Response, *, close: bool = False) -> None:
    conn = exchange.conn
    if conn.closed:
        return
    data = local_response_bytes(conn.ctx, exchange, response, exchange.request_id, close=close)
    conn.send_local(exchange, data, response.status)


def respond_deny(exchange: Exchange, deny: Deny, *, close: bool = False) -> None:
    respond(exchange, problem_response(deny, exchange.request_id), close=close)


def upstream_failed(exchange: Exchange, error: UpstreamError) -> None:
    """The upstream failed before any of its response reached the client: answer 502/504."""
    route = exchange.route
    exchange.conn.ctx.stats.upstream_error(route.name if route else "-", error.code)
    exchange.upstream = None
    deny = deny_for_error(error, _UPSTREAM_DETAIL.get(error.code, ""))
    respond_deny(exchange, deny)


_UPSTREAM_DETAIL: Final = {
    "upstream.unreachable": "The upstream service could not be reached.",
    "upstream.timeout": "The upstream service did not answer in time.",
    "upstream.bad_response": "The upstream service sent an invalid response.",
    "upstream.tls_failed": "The upstream service could not be reached securely.",
}


def deny_body_too_large(exchange: Exchange) -> None:
    if exchange.response_started:
        exchange.conn.abort()
        return
    cancel(exchange)
    respond_deny(exchange, BODY_TOO_LARGE, close=True)


def cancel(exchange: Exchange) -> None:
    """Stop work for an exchange whose answer will never be sent as planned."""
    task = exchange.task
    if task is not None:
        exchange.task = None
        task.cancel()
    upstream = exchange.upstream
    if upstream is not None:
        exchange.upstream = None
        upstream.abandon()


def client_gone(exchange: Exchange) -> None:
    """The client connection closed while ``exchange`` was being answered."""
    cancel(exchange)
    completed(exchange)


def completed(exchange: Exchange, now: float = 0.0) -> None:
    """Account for an exchange once: traffic counters, in-flight gauge, completion hooks.

    ``now`` is the loop time if the caller has just read it."""
    if exchange.accounted:
        return
    exchange.accounted = True
    ctx = exchange.conn.ctx
    stats = ctx.stats
    stats.in_flight -= 1
    seconds = (now or ctx.loop.time()) - exchange.started
    route = exchange.route
    route_name = route.name if route else "-"
    status = exchange.status if exchange.status > 0 else 499
    method = _METHODS.get(exchange.method) or _method_text(exchange.method)
    stats.record(route_name, method, status, seconds)
    upstream = exchange.upstream_seconds
    if upstream >= 0:
        stats.record_upstream(route_name, upstream)
    request = exchange.request
    chain = exchange.chain
    if ctx.complete_hooks and request is not None:
        # all but the observer's: it gets the exchange below, from the values read for the access
        # event (bastion.pipeline.observer)
        chain.on_complete(request, status, exchange.bytes_sent, seconds, True)
    access = ctx.access
    observer = chain.observer
    if access is None and observer is None:
        return
    # Values already at hand only, read once for the access event and the observer (the
    # detectors); the writer thread formats (bastion.observability.ecs).
    consumer = None
    if request is not None:
        identity = request.state.get(IDENTITY)
        if identity is not None:
            consumer = identity.consumer
        if route is None:  # refused after routing: the event still names the route
            matched = request.state.get(ROUTE)
            route_name = matched.name if matched is not None else "-"
    conn = exchange.conn
    ip = (exchange.client or conn.peer).ip
    body_in = exchange.content_length
    if exchange.chunked:  # counted only when a guard collected the body
        body_in = len(request.body) if request is not None and request.body else 0
    wall = time()
    if observer is not None and request is not None:
        try:
            observer.exchange(
                request,
                consumer,
                route_name,
                ip,
                status,
                body_in,
                exchange.bytes_sent,
                wall,
            )
        except Exception as exc:  # as the chain's completion hooks: logged, never the exchange's
            logger.error("exchange observer failed: %s", describe(exc))
    if access is not None:
        access(
            (
                wall,
                exchange.method,
                exchange.path,
                status,
                body_in,
                exchange.bytes_sent,
                seconds,
                ip,
                exchange.request_id_field,
                route_name,
                consumer,
                exchange.host,
                upstream,
                conn.peer.ip,
            )
        )


__all__ = ["reason_phrase", "respond", "respond_deny", "start", "upstream_failed"]
