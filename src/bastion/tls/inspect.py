"""``bastion tls inspect``: what a TLS endpoint serves, seen from a client.

Versions are probed one by one (TLS 1.0 and 1.1 need OpenSSL's security level 0 on this side
to be offered at all), TLS 1.2 suites one by one from what this OpenSSL can offer, TLS 1.3 by
the suite negotiated. Then one verified handshake (system trust store, or ``--ca``) gives the
chain, expiry, pins and ALPN, and one ``HEAD`` request the HSTS field. Blocking sockets: this is
a command-line tool, not the gateway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from bastion.tls.certs import CertificateFacts

VERSIONS: tuple[tuple[str, ssl.TLSVersion], ...] = (
    ("TLSv1", ssl.TLSVersion.TLSv1),
    ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
    ("TLSv1.2", ssl.TLSVersion.TLSv1_2),
    ("TLSv1.3", ssl.TLSVersion.TLSv1_3),
)


@dataclass
class Inspection:
    host: str
    port: int
    server_name: str
    versions: dict[str, bool] = field(default_factory=dict)
    tls12_suites: list[str] = field(default_factory=list)
    tls13_suite: str | None = None
    alpn: str | None = None
    verified: bool = False
    verify_error: str | None = None
    chain: list[CertificateFacts] = field(default_factory=list)
    hsts: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "server_name": self.server_name,
            "versions": self.versions,
            "tls12_suites": self.tls12_suites,
            "tls13_suite": self.tls13_suite,
            "alpn": self.alpn,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "hsts": self.hsts,
            "error": self.error,
            "chain": [
                {
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "dns_names": list(c.dns_names),
                    "not_before": c.not_before.isoformat(),
                    "not_after": c.not_after.isoformat(),
                    "days_left": round(c.days_left(), 1),
                    "key": c.key_type,
                    "pin": c.pin,
                    "sha256": c.fingerprint,
                }
                for c in self.chain
            ],
        }


def parse_target(target: str) -> tuple[str, int, str]:
    """``https://host[:port]/...``, ``host:port`` or ``host``: host, port (443) and SNI name."""
    if "://" not in target:
        target = "https://" + target
    parts = urlsplit(target)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("expected an https:// URL or HOST[:PORT]")
    return parts.hostname, parts.port or 443, parts.hostname


def _probe_context(
    version: ssl.TLSVersion | None = None, ciphers: str | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    if version is not None:
        with warnings.catch_warnings(), contextlib.suppress(ValueError):
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1, on purpose
            context.minimum_version = version
            context.maximum_version = version
    return context


def _handshake(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> ssl.SSLSocket | None:
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        tls = context.wrap_socket(sock, server_hostname=server_name)
    except (ssl.SSLError, OSError):
        sock.close()
        return None
    return tls


def _chain(tls: ssl.SSLSocket) -> list[CertificateFacts]:
    """The chain as served (3.11 has it only on the private object), else the leaf alone."""
    getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    ders: list[bytes] = []
    if callable(getter):
        with contextlib.suppress(Exception):
            ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in getter() or []]  # type: ignore[attr-defined]
    if not ders:
        leaf = tls.getpeercert(True)
        ders = [leaf] if leaf else []
    return [CertificateFacts.of(x509.load_der_x509_certificate(der)) for der in ders]


def _hsts(tls: ssl.SSLSocket, server_name: str, port: int) -> str | None:
    authority = server_name if port == 443 else f"{server_name}:{port}"
    request = f"HEAD / HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n"
    tls.sendall(request.encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"strict-transport-security":
            return value.strip().decode("latin-1")
    return None


def inspect(
    target: str, *, cafile: str | None = None, server_name: str | None = None, timeout: float = 5.0
) -> Inspection:
    host, port, sni = parse_target(target)
    sni = server_name or sni
    report = Inspection(host, port, sni)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        report.error = f"cannot connect: {exc.strerror or type(exc).__name__}"
        return report
    for name, version in VERSIONS:
        tls = _handshake(host, port, sni, _probe_context(version), timeout)
        report.versions[name] = tls is not None and tls.version() == name
        if tls is not None:
            if name == "TLSv1.3":
                cipher = tls.cipher()
                report.tls13_suite = cipher[0] if cipher else None
            tls.close()
    if report.versions.get("TLSv1.2"):
        offered = [c["name"] for c in _probe_context().get_ciphers() if c["protocol"] != "TLSv1.3"]
        for suite in offered:
            try:
                context = _probe_context(ssl.TLSVersion.TLSv1_2, suite)
            except ssl.SSLError:
                continue
            tls = _handshake(host, port, sni, context, timeout)
            if tls is not None:
                report.tls12_suites.append(suite)
                tls.close()
    verifying = ssl.create_default_context(cafile=cafile)
    verifying.set_alpn_protocols(["h2", "http/1.1"])
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        tls = verifying.wrap_socket(sock, server_hostname=sni)
        report.verified = True
    except ssl.SSLCertVerificationError as exc:
        report.verify_error = exc.verify_message
        unverified = _probe_context()
        unverified.set_alpn_protocols(["h2", "http/1.1"])
        probe = _handshake(host, port, sni, unverified, timeout)
        if probe is None:
            return report
        tls = probe
    except (ssl.SSLError, OSError) as exc:
        report.error = f"handshake failed: {type(exc).__name__}"
        return report
    with tls:
        report.alpn = tls.selected_alpn_protocol()
        report.chain = _chain(tls)
        with contextlib.suppress(OSError, ssl.SSLError):
            report.hsts = _hsts(tls, sni, port)
    return report


def render(report: Inspection, now: dt.datetime | None = None) -> str:
    """The report as text for a terminal."""
    now = now or dt.datetime.now(dt.UTC)
    lines = [f"{report.server_name} ({report.host}:{report.port})"]
    if report.error and not report.versions:
        return "\n".join([*lines, f"  {report.error}"])
    versions = ", ".join(f"{n} {'yes' if ok else 'no'}" for n, ok in report.versions.items())
    lines.append(f"  versions:  {versions}")
    if report.tls13_suite:
        lines.append(f"  TLS 1.3:   {report.tls13_suite} (negotiated)")
    if report.tls12_suites:
        lines.append(f"  TLS 1.2:   {', '.join(report.tls12_suites)}")
    lines.append(f"  ALPN:      {report.alpn or 'none'}")
    lines.append(f"  HSTS:      {report.hsts or 'absent'}")
    verdict = "verified" if report.verified else f"NOT verified ({report.verify_error})"
    lines.append(f"  chain:     {verdict}")
    for index, cert in enumerate(report.chain):
        days = cert.days_left(now)
        when = f"expires {cert.not_after:%Y-%m-%d} ({days:.0f} days)" if days > 0 else "EXPIRED"
        lines.append(f"   [{index}] {cert.subject}")
        lines.append(f"       issuer {cert.issuer}; {cert.key_type}; {when}")
        if cert.dns_names:
            lines.append(f"       names  {', '.join(cert.dns_names)}")
        lines.append(f"       pin    sha256/{cert.pin}")
    if report.error:
        lines.append(f"  {report.error}")
    return "\n".join(lines)
