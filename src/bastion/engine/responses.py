"""Response heads bastion writes: its own answers (denials, endpoints, refusals) and the head of
an upstream's response after rewriting. Every response carries the request id and ``nosniff``;
over TLS, every one also carries ``Strict-Transport-Security`` (``ctx.hsts``, empty otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from bastion.engine.headers import ResponseScan
from bastion.engine.http11 import Refusal, status_line
from bastion.pipeline.decisions import Deny
from bastion.pipeline.forwarding import new_request_id
from bastion.pipeline.problem import problem_response, reason_phrase
from bastion.pipeline.response import Response

if TYPE_CHECKING:
    from bastion.engine.context import EngineContext
    from bastion.engine.exchange import Exchange

_NOSNIFF: Final = b"x-content-type-options: nosniff\r\n"
_CLOSE: Final = b"connection: close\r\n"
_KEEP_ALIVE: Final = b"connection: keep-alive\r\n"
_CHUNKED: Final = b"transfer-encoding: chunked\r\n"


def _encode_pairs(pairs: Sequence[tuple[str, str]]) -> list[bytes]:
    return [f"{name}: {value}\r\n".encode("latin-1") for name, value in pairs]


_LINES: Final[dict[str, tuple[str, bytes]]] = {}
_LINES_LIMIT: Final = 64


def _header_line(name: str, value: str) -> bytes:
    """``name: value\r\n`` encoded. The last value of each name is remembered with its line
    (by identity, and the entry holds it): a guard that answers the same header object from
    request to request (``RateLimit-Policy``, a remembered ``RateLimit``) costs one lookup."""
    last = _LINES.get(name)
    if last is not None and last[0] is value:
        return last[1]
    line = f"{name}: {value}\r\n".encode("latin-1")
    if last is not None or len(_LINES) < _LINES_LIMIT:
        _LINES[name] = (value, line)
    return line


def _connection_field(exchange: Exchange | None, close: bool) -> bytes:
    if close or exchange is None:
        return _CLOSE
    return _KEEP_ALIVE if exchange.version == "1.0" else b""


def local_response_bytes(
    ctx: EngineContext,
    exchange: Exchange,
    response: Response,
    request_id: str,
    *,
    close: bool = False,
) -> bytes:
    """A complete response bastion answers itself (a denial, an endpoint, an upstream error)."""
    close = close or not exchange.keep_alive or not exchange.body_done or ctx.draining
    if close:
        exchange.keep_alive = False
    pairs = list(response.headers)
    pairs.extend(exchange.extra_headers)
    nosniff = any(name == "x-content-type-options" for name, _ in pairs)
    if ctx.response_hooks and exchange.request is not None:
        exchange.chain.on_response(exchange.request, response.status, pairs)
    parts = [status_line(response.status), *_encode_pairs(pairs)]
    body = b"" if exchange.head_only or response.status in (204, 304) else response.body
    parts.append(
        ctx.request_id_header
        + b": "
        + request_id.encode("ascii")
        + b"\r\n"
        + (b"" if nosniff else _NOSNIFF)
        + ctx.hsts
        + ctx.server_header
        + _connection_field(exchange, close)
        + (b"" if response.status in (204, 304) else b"content-length: %d\r\n" % len(response.body))
        + b"\r\n"
    )
    parts.append(body)
    return b"".join(parts)


def refusal_bytes(ctx: EngineContext, refusal: Refusal) -> bytes:
    """The answer to a request refused while parsing: problem+json, then the connection closes."""
    deny = Deny(
        refusal.refusal_status,
        refusal.refusal_code,
        reason_phrase(refusal.refusal_status),
        refusal.message,
    )
    request_id = refusal.request_id or new_request_id()
    response = problem_response(deny, request_id)
    parts = [status_line(response.status), *_encode_pairs(response.headers)]
    parts.append(
        ctx.request_id_header
        + b": "
        + request_id.encode("ascii")
        + b"\r\n"
        + _NOSNIFF
        + ctx.hsts
        + ctx.server_header
        + _CLOSE
        + b"content-length: %d\r\n\r\n" % len(response.body)
    )
    parts.append(response.body)
    return b"".join(parts)


def proxied_head(
    ctx: EngineContext,
    exchange: Exchange,
    status: int,
    scan: ResponseScan,
    *,
    framing: bytes,
    close: bool,
    upgrade: bool = False,
) -> bytes:
    """The head of an upstream response after rewriting (see :mod:`bastion.engine.headers`)."""
    request = exchange.request
    nosniff = scan.nosniff
    if ctx.response_hooks and request is not None:
        pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scan.pairs()]
        pairs.extend(exchange.extra_headers)
        exchange.chain.on_response(request, status, pairs)
        parts = [status_line(status), *_encode_pairs(pairs)]
        nosniff = any(name == "x-content-type-options" for name, _ in pairs)
    else:
        parts = scan.parts
        parts[0] = status_line(status)
        # Guards' headers (RateLimit on every limited response): one loop, no generator.
        for name, value in exchange.extra_headers:
            parts.append(_header_line(name, value))
            if name == "x-content-type-options":
                nosniff = True
    parts.append(exchange.request_id_field)
    if not nosniff:
        parts.append(_NOSNIFF)
    if ctx.hsts:
        parts.append(ctx.hsts)
    if ctx.server_header:
        parts.append(ctx.server_header)
    if close or exchange.version == "1.0":
        parts.append(b"" if upgrade else _connection_field(exchange, close))
    parts.append(framing + b"\r\n")
    return b"".join(parts)


CHUNKED: Final = _CHUNKED
