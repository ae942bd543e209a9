"""Who the client really is: forwarding headers believed only from trusted proxies.

A client can write any ``X-Forwarded-For`` it likes, so bastion reads inbound forwarding headers
(``X-Forwarded-For/-Proto/-Host``, ``Forwarded``, the request-id header) only when the TCP peer is
a configured trusted proxy, walks the chain from the right, and stops at the first address that is
not trusted. Outbound, it writes these headers anew; whatever the client sent is never passed on
as is. Both the engine and the ASGI middleware use this one module.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bastion.config.types import Network

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for=(?:"\[?([^\]"]+)\]?(?::\d+)?"|([^;,\s"]+))')


@dataclass(frozen=True, slots=True)
class Origin:
    """What the forwarding chain says about the original request."""

    client_ip: str
    scheme: str
    host: str | None
    forwarded_for: tuple[str, ...]  # trusted inbound chain (without the peer), oldest first


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ForwardingPolicy:
    """Derives the :class:`Origin` of a request from its peer and its headers."""

    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self._trusted = tuple(trusted)
        self._is_trusted = lru_cache(maxsize=4096)(self._check_trusted)

    @property
    def trusts_anyone(self) -> bool:
        return bool(self._trusted)

    def _check_trusted(self, ip: str) -> bool:
        address = _parse_ip(ip)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    def is_trusted(self, ip: str) -> bool:
        return bool(self._trusted) and self._is_trusted(ip)

    def origin(
        self,
        peer_ip: str,
        scheme: str,
        x_forwarded_for: Sequence[str] = (),
        forwarded: Sequence[str] = (),
        x_forwarded_proto: str | None = None,
        x_forwarded_host: str | None = None,
    ) -> Origin:
        """The client address, scheme and host, believing headers only from trusted peers.

        ``Forwarded`` (RFC 7239) is used when present, ``X-Forwarded-For`` otherwise; the chain is
        walked right to left and the first untrusted hop is the client.
        """
        if not self.is_trusted(peer_ip):
            return Origin(peer_ip, scheme, None, ())
        hops: list[str] = []
        if forwarded:
            for value in forwarded:
                for match in _FORWARDED_FOR.finditer(value):
                    hops.append(match.group(1) or match.group(2))
        else:
            for value in x_forwarded_for:
                hops.extend(part.strip() for part in value.split(",") if part.strip())
        addresses: list[str] = []
        for hop in hops:
            parsed = _parse_ip(hop)
            if parsed is None:
                # An unparseable hop ends what can be believed: keep only what lies to its right.
                addresses.clear()
                continue
            addresses.append(str(parsed))
        client = peer_ip
        kept = len(addresses)
        for index in range(len(addresses) - 1, -1, -1):
            client = addresses[index]
            kept = index
            if not self.is_trusted(client):
                break
        proto = (x_forwarded_proto or "").split(",")[-1].strip().lower()
        host = (x_forwarded_host or "").split(",")[-1].strip() or None
        return Origin(
            client,
            proto if proto in ("http", "https") else scheme,
            host,
            tuple(addresses[kept:]) if addresses else (),
        )

    def request_id(self, peer_ip: str, inbound: str | None) -> str:
        """The inbound request id when a trusted proxy sent a well-formed one, else a new id."""
        if inbound is not None and self.is_trusted(peer_ip) and _REQUEST_ID.match(inbound):
            return inbound
        return new_request_id()


_ID_BASE = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A process-unique id: a random per-process base and a counter (cheap, never repeated)."""
    return f"{_ID_BASE}{next(_ID_COUNTER):08x}"


def request_id_source() -> tuple[str, Iterator[int]]:
    """The base and the counter behind :func:`new_request_id`, for a writer that formats ids
    itself (the engine writes ``base + "%08x" % next(counter)`` as bytes, the same ids)."""
    return _ID_BASE, _ID_COUNTER


def forwarded_for_value(origin: Origin, peer_ip: str) -> str:
    """The ``X-Forwarded-For`` to send upstream: the believed chain, then the peer."""
    chain = [*origin.forwarded_for, peer_ip] if origin.forwarded_for else [peer_ip]
    return ", ".join(chain)
