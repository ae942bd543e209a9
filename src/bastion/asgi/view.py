"""ASGI scope -> the request view guards inspect, with the same meaning the gateway engine gives it.

The server has already parsed the request, so this module only translates: the path as it was
received (``raw_path``), the raw query, the raw header pairs (decoded lazily by :class:`Headers`),
and the client, scheme, host and request id derived by :class:`ForwardingPolicy`, which believes
forwarding headers only when the TCP peer is a trusted proxy. Headers are scanned as bytes and
only the few this module needs are decoded, so a request no guard looks at costs no decoding.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bastion.asgi.types import Scope
from bastion.pipeline import paths
from bastion.pipeline.decisions import Deny
from bastion.pipeline.forwarding import ForwardingPolicy, new_request_id
from bastion.pipeline.paths import path_problem
from bastion.pipeline.request import ClientAddress, Headers, Request, TLSInfo

NO_PEER = ClientAddress("", 0)
"""The peer of a request the server gives no address for (a Unix socket): trusted by no policy."""

DOT_SEGMENTS = Deny(400, "request.invalid_path", "Bad Request", paths.DOT_SEGMENTS)
ENCODED_NUL = Deny(400, "request.invalid_path", "Bad Request", paths.ENCODED_NUL)

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_PATH_SAFE = "/:@!$&'()*+,;="  # RFC 3986 pchar and '/', besides the unreserved characters
_FORWARDING = (b"x-forwarded-for", b"forwarded", b"x-forwarded-proto", b"x-forwarded-host")
_TLS_VERSIONS = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_TLS13_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}


def raw_path(scope: Scope) -> str:
    """The path as the client sent it, percent-encoding intact.

    ``scope["path"]`` is already percent-decoded, so ``/a%2Fb`` and ``/a/b`` would look alike
    to a guard; ``raw_path`` keeps them apart. Some servers include the query in ``raw_path``.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw:
        return raw.partition(b"?")[0].decode("latin-1")
    path: str = scope.get("path", "/")
    return quote(path, safe=_PATH_SAFE)


def path_refusal(path: str) -> Deny | None:
    """The denial for a path the gateway engine would refuse too (``pipeline.paths``), or None."""
    problem = path_problem(path.encode("latin-1"))
    if problem is None:
        return None
    return DOT_SEGMENTS if problem == paths.DOT_SEGMENTS else ENCODED_NUL


def host_name(value: str) -> str:
    """``Host``-style ``value`` without its port, lower-cased (IPv6 keeps its brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    return value.partition(":")[0]


def first_header(raw: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in raw:
        if key == name:
            return value.decode("latin-1")
    return None


def tls_info(extension: Mapping[str, Any]) -> TLSInfo:
    """:class:`TLSInfo` from the ASGI ``tls`` extension.

    A client certificate the server reports a verification error for is left out: guards read
    ``client_cert_der`` as a verified identity.
    """
    version = extension.get("tls_version")
    suite = extension.get("cipher_suite")
    der: bytes | None = None
    chain = extension.get("client_cert_chain") or ()
    if chain and not extension.get("client_cert_error"):
        try:
            der = ssl.PEM_cert_to_DER_cert(chain[0])
        except (ValueError, TypeError):
            der = None
    return TLSInfo(
        version=_TLS_VERSIONS.get(version, f"0x{version:04x}") if isinstance(version, int) else "",
        cipher=_TLS13_SUITES.get(suite, f"0x{suite:04x}") if isinstance(suite, int) else "",
        client_cert_der=der,
    )


class ScopeReader:
    """Builds the request views of one middleware.

    It remembers the peers and host names it has seen (bounded: a full memory is emptied, so a
    client sending endless distinct values costs nothing but a re-computation), because a
    keep-alive connection sends many requests with the same two, and turning them into a
    :class:`ClientAddress` and a bare host name again each time is a third of the work here.
    """

    __slots__ = ("_hosts", "_peers", "id_header", "policy")

    MEMORY = 1024

    def __init__(self, policy: ForwardingPolicy, id_header: bytes) -> None:
        self.policy = policy
        self.id_header = id_header
        self._peers: dict[tuple[str, int], ClientAddress] = {}
        self._hosts: dict[str, str] = {}

    def request(self, scope: Scope) -> Request:
        """The request view of an ``http`` or ``websocket`` scope.

        Forwarding headers and an inbound request id are read only when the peer is trusted; a
        client that is not a trusted proxy is its own client whatever headers it sends. The
        untrusted path (the common one) touches no header but ``Host``.
        """
        raw: Sequence[tuple[bytes, bytes]] = scope.get("headers") or ()
        peer = self._peer(scope.get("client"))
        scheme = _SCHEMES.get(scope.get("scheme", "http"), "http")
        policy = self.policy
        if policy.is_trusted(peer.ip):
            client, scheme, host, request_id = _forwarded(raw, peer, scheme, policy, self.id_header)
        else:
            client, host, request_id = peer, None, new_request_id()
        if host is None:
            host = first_header(raw, b"host")
            if host is None:
                server = scope.get("server")
                host = str(server[0]) if server else ""
        name = self._hosts.get(host)
        if name is None:
            if len(self._hosts) >= self.MEMORY:
                self._hosts.clear()
            name = self._hosts[host] = host_name(host)
        extensions = scope.get("extensions")
        tls = extensions.get("tls") if extensions else None
        return Request(
            method=scope.get("method", "GET"),
            path=raw_path(scope),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=Headers(raw),
            client=client,
            peer=peer,
            scheme=scheme,
            host=name,
            http_version=scope.get("http_version", "1.1"),
            tls=tls_info(tls) if tls else None,
            request_id=request_id,
        )

    def _peer(self, address: Any) -> ClientAddress:
        if not address:
            return NO_PEER
        key = (address[0], address[1])
        peer = self._peers.get(key)
        if peer is None:
            if len(self._peers) >= self.MEMORY:
                self._peers.clear()
            peer = self._peers[key] = ClientAddress(str(address[0]), int(address[1]))
        return peer


def _forwarded(
    raw: Sequence[tuple[bytes, bytes]],
    peer: ClientAddress,
    scheme: str,
    policy: ForwardingPolicy,
    id_header: bytes,
) -> tuple[ClientAddress, str, str | None, str]:
    """Client, scheme, forwarded host and request id of a request from a trusted proxy."""
    found: dict[bytes, list[str]] = {}
    for key, value in raw:
        if key in _FORWARDING or key == id_header:
            found.setdefault(key, []).append(value.decode("latin-1"))
    proto = found.get(b"x-forwarded-proto")
    fwd_host = found.get(b"x-forwarded-host")
    origin = policy.origin(
        peer.ip,
        scheme,
        x_forwarded_for=found.get(b"x-forwarded-for", ()),
        forwarded=found.get(b"forwarded", ()),
        x_forwarded_proto=",".join(proto) if proto else None,
        x_forwarded_host=",".join(fwd_host) if fwd_host else None,
    )
    client = peer if origin.client_ip == peer.ip else ClientAddress(origin.client_ip, 0)
    ids = found.get(id_header)
    return client, origin.scheme, origin.host, policy.request_id(peer.ip, ids[0] if ids else None)
