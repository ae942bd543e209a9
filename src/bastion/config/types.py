"""Value types the config accepts in readable forms: durations, sizes, addresses, URLs, networks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``2.5``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"90d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 500ms or 5m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 10s, 500ms or 5m")
    if seconds < 0:
        raise ValueError("expected a duration that is not negative")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from ``1024``, ``"64KiB"``, ``"10MB"``, ``"1GiB"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 8192, 64KiB or 10MiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group(2).lower() if match.group(2) else None
        size = int(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError("expected a size such as 8192, 64KiB or 10MiB")
    if size < 0:
        raise ValueError("expected a size that is not negative")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
ByteSize = Annotated[int, BeforeValidator(parse_size)]


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: Any) -> HostPort:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces)."""
    if isinstance(value, HostPort):
        return value
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:8080")
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:8080")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("expected a port from 0 to 65535")
    return HostPort(host or "0.0.0.0", port)


ListenAddress = Annotated[HostPort, BeforeValidator(parse_host_port), PlainSerializer(str)]


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    """Where a route forwards: scheme, host, port and an optional base path (no query)."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.base_path}"


def parse_upstream_url(value: Any) -> UpstreamURL:
    if isinstance(value, UpstreamURL):
        return value
    expected = "expected an http:// or https:// URL such as http://127.0.0.1:8000"
    if not isinstance(value, str):
        raise ValueError(expected)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    if parts.username or parts.password:
        raise ValueError("expected a URL without user:password (put credentials elsewhere)")
    if parts.query or parts.fragment:
        raise ValueError("expected a URL without query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("expected a port from 1 to 65535") from exc
    port = port or (443 if parts.scheme == "https" else 80)
    return UpstreamURL(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


UpstreamTarget = Annotated[UpstreamURL, BeforeValidator(parse_upstream_url), PlainSerializer(str)]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(value: Any) -> Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an IP address or CIDR network such as 10.0.0.0/8")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise ValueError("expected an IP address or CIDR network such as 10.0.0.0/8") from exc


TrustedNetwork = Annotated[Network, BeforeValidator(parse_network), PlainSerializer(str)]
