"""Rewriting header sections at the proxy boundary, in bytes, with one join per message head.

Hop-by-hop fields (RFC 9110 §7.6.1) belong to one connection and are never forwarded, and neither
is any field the Connection header names. Forwarding headers (X-Forwarded-*, Forwarded) are always
written anew by bastion from what it believes (see :mod:`bastion.pipeline.forwarding`); whatever a
client sent under those names is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bastion.pipeline.forwarding import Origin

RawPairs = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP: Final = frozenset(
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
REQUEST_REWRITTEN: Final = HOP_BY_HOP | {
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
RESPONSE_REWRITTEN: Final = HOP_BY_HOP | {b"content-length", b"server", b"x-powered-by"}


def _spellings(names: str) -> dict[bytes, bytes]:
    """``{spelling: lower-case name}`` for each name as commonly written and in lower case."""
    table = {}
    for name in names.split():
        lowered = name.lower().encode("ascii")
        table[name.encode("ascii")] = lowered
        table[lowered] = lowered
    return table


# Field names as clients and upstreams usually spell them, each mapped to its lower-case form:
# a dict look-up by the raw name costs less than lower() (a method call and a new object).
# Any other spelling takes the lower() path; the result is the same.
REQUEST_NAMES: Final = _spellings(
    "Host User-Agent Accept Accept-Encoding Accept-Language Connection Content-Type"
    " Content-Length Authorization Cookie Referer Origin Cache-Control Transfer-Encoding"
    " Expect Upgrade X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host Forwarded X-Real-IP"
    " X-Request-ID X-API-Key If-None-Match If-Modified-Since"
)
RESPONSE_NAMES: Final = _spellings(
    "Server Date Content-Type Content-Length Connection Transfer-Encoding Keep-Alive"
    " Cache-Control ETag Last-Modified Vary Expires Accept-Ranges Content-Encoding Location"
    " Set-Cookie X-Powered-By Pragma Access-Control-Allow-Origin X-Request-ID Upgrade"
    " Strict-Transport-Security X-Content-Type-Options"
)


def response_name_table(skip: frozenset[bytes]) -> dict[bytes, tuple[bytes, bool]]:
    """``{spelling: (lower-case name, name in skip)}`` for :data:`RESPONSE_NAMES`: what the
    upstream's ``on_header`` would compute with lower() and a set look-up, computed once."""
    return {raw: (lowered, lowered in skip) for raw, lowered in RESPONSE_NAMES.items()}


def connection_tokens(headers: RawPairs) -> frozenset[bytes]:
    """Field names listed in Connection headers (lower case); those fields are hop-by-hop too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


_PLAIN_CONNECTION_TOKENS: Final = frozenset({b"close", b"keep-alive", b"upgrade"})
_PLAIN_CONNECTION_VALUES: Final = frozenset({b"close", b"keep-alive", b"upgrade"})
# Connection values as usually spelled -> (announces a close, names other fields): what the
# lower-case checks of scan_response give for each.
_CONNECTION_VALUES: Final = {
    spelling: (value == b"close", False)
    for value in _PLAIN_CONNECTION_VALUES
    for spelling in (value, value.title())
}


def _forwarded_node(ip: str) -> str:
    return f'"[{ip}]"' if ":" in ip else ip


def _forwarded_host(host: str) -> str:
    return '"' + host.replace("\\", "").replace('"', "") + '"'


def forwarding_block(origin: Origin, peer_ip: str, client_host: str) -> bytes:
    """X-Forwarded-For/-Proto/-Host and Forwarded as bastion believes them (one bytes block).

    The same for every request of a connection from an untrusted peer, so callers cache it.
    """
    chain = [*origin.forwarded_for, peer_ip] if origin.forwarded_for else [peer_ip]
    forwarded = ", ".join("for=" + _forwarded_node(ip) for ip in chain)
    forwarded += ";proto=" + origin.scheme
    text = f"x-forwarded-for: {', '.join(chain)}\r\nx-forwarded-proto: {origin.scheme}\r\n"
    if client_host:
        forwarded += ";host=" + _forwarded_host(client_host)
        text += f"x-forwarded-host: {client_host}\r\n"
    text += f"forwarded: {forwarded}\r\n"
    return text.encode("latin-1")


def request_head(
    method: bytes,
    target: bytes,
    headers: RawPairs,
    host: bytes,
    skip: frozenset[bytes],
    forwarding: bytes,
    request_id_field: bytes,
    body_framing: bytes,
    upgrade: bool,
) -> bytes:
    """The head sent upstream: canonical request line, filtered fields, bastion's own fields.

    ``skip`` holds the fields never copied (:data:`REQUEST_REWRITTEN` and the request-id field);
    ``forwarding`` comes from :func:`forwarding_block`; ``request_id_field`` is the whole
    ``name: value\r\n`` line. ``body_framing`` is a Content-Length or Transfer-Encoding line, or
    empty. ``upgrade`` keeps a WebSocket handshake's Upgrade and Connection fields.
    """
    parts: list[bytes] = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    extend = parts.extend
    named = False
    for name, value in headers:
        if name in skip:
            if name == b"connection":
                named = named or value.lower() not in _PLAIN_CONNECTION_VALUES
            continue
        extend((name, b": ", value, b"\r\n"))
    if named:
        tokens = connection_tokens(headers) - _PLAIN_CONNECTION_TOKENS
        if tokens:  # fields the client declared hop-by-hop: copy again without them (rare)
            del parts[6:]
            for name, value in headers:
                if name not in skip and name not in tokens:
                    extend((name, b": ", value, b"\r\n"))
    parts.append(forwarding)
    parts.append(request_id_field)
    if upgrade:
        parts.append(b"connection: upgrade\r\nupgrade: websocket\r\n")
    parts.append(body_framing)
    parts.append(b"\r\n")
    return b"".join(parts)


class ResponseScan:
    """What an upstream response head holds once its fields are sorted (see :func:`scan_response`).

    :attr:`parts` is the response head being written: a slot for the status line, then the
    fields passed on as ``name, b": ", value, b"\\r\\n"`` groups (bastion appends its own fields).
    """

    __slots__ = ("chunked", "close", "length", "nosniff", "other_coding", "parts")

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.length: bytes | None = None
        self.chunked = False
        self.other_coding = False  # a transfer coding bastion does not decode (refused)
        self.nosniff = False
        self.close = False  # the upstream will close the connection after this response

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The fields passed on, as ``(name, value)`` pairs (for response hooks)."""
        parts = self.parts
        return [(parts[i], parts[i + 2]) for i in range(1, len(parts), 4)]


def field_bytes(parts: list[bytes], special: RawPairs) -> int:
    """The size of a response head's fields (``name: value\\r\\n`` each), for the head limit."""
    return sum(map(len, parts)) + sum(len(name) + len(value) + 4 for name, value in special)


def scan_response(
    parts: list[bytes], special: RawPairs, skip: frozenset[bytes], *, upgrade: bool
) -> ResponseScan:
    """Sort the fields of an upstream response head; framing and ``nosniff`` facts in one pass.

    The parser callback has already split the fields (lower-case names) in two, in arrival
    order: those not in ``skip`` went to ``parts`` as encoded groups after a status-line slot
    (so that a typical response costs no second pass over them), and those in ``skip``
    (:data:`RESPONSE_REWRITTEN` and the request-id field) to ``special``, which is read here.

    ``upgrade`` keeps the Upgrade and Connection fields of a 101 answer to a WebSocket
    handshake. Fields named by a Connection header are hop-by-hop too and are dropped.
    """
    scan = ResponseScan(parts)
    named = False
    for name, value in special:
        if name == b"content-length":
            scan.length = value.strip()
        elif name == b"transfer-encoding":
            if value.strip().lower() == b"chunked":
                scan.chunked = True
            else:
                scan.other_coding = True
        elif name == b"connection":
            known = _CONNECTION_VALUES.get(value)  # the usual values, without lower()
            if known is not None:
                close, names_fields = known
            else:
                lowered = value.lower()
                # find, not ``in``: bytes.__contains__ first tries its argument as an integer,
                # and the TypeError it raises and clears costs more than the whole search
                close = lowered.find(b"close") >= 0
                names_fields = lowered not in _PLAIN_CONNECTION_VALUES
            if close:
                scan.close = True
            named = named or names_fields
            if upgrade:
                parts += (name, b": ", value, b"\r\n")
        elif upgrade and name == b"upgrade":
            parts += (name, b": ", value, b"\r\n")
    if named:
        tokens = connection_tokens(special) - _PLAIN_CONNECTION_TOKENS - skip
        if tokens:  # fields the upstream declared hop-by-hop: not passed on (rare)
            kept = [parts[0]]
            for i in range(1, len(parts), 4):
                if parts[i] not in tokens:
                    kept += parts[i : i + 4]
            parts = scan.parts = kept
    for i in range(1, len(parts), 4):  # the names (a native loop: no slice, no iterator)
        if parts[i] == b"x-content-type-options":
            scan.nosniff = True
            break
    return scan
