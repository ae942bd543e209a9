"""Rewriting header sections at the proxy boundary, in bytes, with one join per message head.

Hop-by-hop fields (RFC 9110 §7.6.1) belong to one connection and are never forwarded, and neither
is any field the Connection header names. Forwarding headers (X-Forwarded-*, Forwarded) are always
written anew by bastion from what it believes (see :mod:`bastion.pipeline.forwarding`); whatever a
client sent under those names is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.pipeline.forwarding import Origin

RawPairs = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request fields bastion writes itself (or handles itself, like Expect) and never copies.
REQUEST_REWRITTEN = HOP_BY_HOP | {
    b"host",
    b"expect",
    b"content-length",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-real-ip",
    b"forwarded",
}

# Response fields bastion writes itself or withholds (upstream identity, framing).
RESPONSE_REWRITTEN = HOP_BY_HOP | {b"content-length", b"server", b"x-powered-by"}


def connection_tokens(headers: RawPairs) -> frozenset[bytes]:
    """Field names listed in Connection headers (lower case); those fields are hop-by-hop too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def _forwarded_node(ip: str) -> str:
    return f'"[{ip}]"' if ":" in ip else ip


def _forwarded_host(host: str) -> str:
    return '"' + host.replace("\\", "").replace('"', "") + '"'


def request_head(
    method: bytes,
    target: bytes,
    headers: RawPairs,
    *,
    host: bytes,
    origin: Origin,
    peer_ip: str,
    client_host: str,
    request_id_header: bytes,
    request_id: str,
    body_framing: bytes,
    upgrade: bool,
) -> bytes:
    """The head sent upstream: canonical request line, filtered fields, bastion's own fields.

    ``body_framing`` is ``b"content-length: N\\r\\n"``, ``b"transfer-encoding: chunked\\r\\n"`` or
    empty. ``upgrade`` keeps a WebSocket handshake's Upgrade and Connection fields.
    """
    named = connection_tokens(headers) if upgrade or _has(headers, b"connection") else frozenset()
    parts: list[bytes] = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    append = parts.append
    for name, value in headers:
        if name in REQUEST_REWRITTEN or name in named or name == request_id_header:
            continue
        append(name)
        append(b": ")
        append(value)
        append(b"\r\n")
    chain = [*origin.forwarded_for, peer_ip] if origin.forwarded_for else [peer_ip]
    forwarded = ", ".join("for=" + _forwarded_node(ip) for ip in chain)
    forwarded += ";proto=" + origin.scheme
    if client_host:
        forwarded += ";host=" + _forwarded_host(client_host)
    append(
        (
            f"x-forwarded-for: {', '.join(chain)}\r\n"
            f"x-forwarded-proto: {origin.scheme}\r\n"
            f"forwarded: {forwarded}\r\n"
        ).encode("latin-1")
    )
    if client_host:
        append(b"x-forwarded-host: " + client_host.encode("latin-1") + b"\r\n")
    append(request_id_header + b": " + request_id.encode("ascii") + b"\r\n")
    if upgrade:
        append(b"connection: upgrade\r\nupgrade: websocket\r\n")
    append(body_framing)
    append(b"\r\n")
    return b"".join(parts)


def _has(headers: RawPairs, wanted: bytes) -> bool:
    return any(name == wanted for name, _ in headers)


def filter_response(
    headers: RawPairs, *, upgrade: bool, drop: bytes
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The upstream fields to pass on and whether one of them is ``x-content-type-options``.

    ``drop`` is the request-id field, which bastion writes itself. ``upgrade`` keeps the Upgrade
    and Connection fields of a 101 answer to a WebSocket handshake.
    """
    named = connection_tokens(headers) if _has(headers, b"connection") else frozenset()
    kept: list[tuple[bytes, bytes]] = []
    nosniff = False
    for pair in headers:
        name = pair[0]
        if name in RESPONSE_REWRITTEN or name in named or name == drop:
            if upgrade and name in (b"upgrade", b"connection"):
                kept.append(pair)
            continue
        if name == b"x-content-type-options":
            nosniff = True
        kept.append(pair)
    return kept, nosniff
