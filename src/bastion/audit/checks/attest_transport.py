"""Attestation of practice 4, encryption in transit: TLS served, HSTS for a year, upstream
certificates verified, remote upstreams over HTTPS. (What attestation is:
:mod:`bastion.audit.checks.attest_common`.)"""

from __future__ import annotations

import ipaddress

from bastion.audit.checks.attest_common import attestation_info
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import Finding, Practice, Registry, Severity
from bastion.config.models import BastionConfig

_ONE_YEAR = 31_536_000


TLS_SERVED = attestation_info(
    "attest.tls-served",
    "The gateway serves TLS",
    Practice.ENCRYPTION,
    Severity.CRITICAL,
    "tls.enabled is true or tls.certificates lists certificates.",
    "Credentials and data on a plain-HTTP listener are readable by anyone on the path.",
    "ASVS 5.0 V12 (Secure Communication)",
    "RFC 8446",
)

HSTS = attestation_info(
    "attest.hsts",
    "HSTS of at least one year",
    Practice.ENCRYPTION,
    Severity.HIGH,
    f"tls.hsts.enabled is true and tls.hsts.max_age is at least {_ONE_YEAR} (one year).",
    "HSTS stops a browser from ever trying plain HTTP again (SSL stripping); one year is the"
    " minimum preload lists and ASVS accept.",
    "RFC 6797",
    "ASVS 5.0 V3 (Web Frontend Security)",
)

UPSTREAM_VERIFIED = attestation_info(
    "attest.upstream-tls-verified",
    "Upstream certificates are verified",
    Practice.ENCRYPTION,
    Severity.HIGH,
    "tls.upstream.verify is true, and so is every tls.upstream_routes entry.",
    "Without verification anyone on the network between gateway and upstream can impersonate"
    " the upstream and read every forwarded request.",
    "ASVS 5.0 V12 (Secure Communication)",
    "RFC 9110 §4.3.4",
)

UPSTREAM_ENCRYPTED = attestation_info(
    "attest.upstream-encrypted",
    "Remote upstreams are reached over HTTPS",
    Practice.ENCRYPTION,
    Severity.LOW,
    "Every route's upstream is https:// or on a loopback address.",
    "Traffic between gateway and application crosses networks too; zero-trust networks encrypt it.",
    "ASVS 5.0 V12 (Secure Communication)",
)


def _tls_on(config: BastionConfig) -> bool:
    return config.tls.enabled or bool(config.tls.certificates)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_served(config: BastionConfig) -> list[Finding]:
    problems = []
    if not _tls_on(config):
        problems.append(("tls.enabled", f"the listener {config.listen} speaks plain HTTP"))
    return verdict(TLS_SERVED, problems, f"TLS is served ({config.tls.profile} profile)")


def hsts(config: BastionConfig) -> list[Finding]:
    settings = config.tls.hsts
    problems = []
    if not settings.enabled:
        problems.append(("tls.hsts.enabled", "HSTS is switched off"))
    elif settings.max_age < _ONE_YEAR:
        problems.append(("tls.hsts.max_age", f"max-age {settings.max_age} is under one year"))
    examined = 1 if _tls_on(config) else 0
    return verdict(
        HSTS,
        problems if examined else [],
        f"HSTS is sent: {settings.header_value()}",
        examined=examined,
        nothing="no TLS listener, so no HSTS to send (see attest.tls-served)",
    )


def upstream_verified(config: BastionConfig) -> list[Finding]:
    problems = []
    if not config.tls.upstream.verify:
        problems.append(("tls.upstream.verify", "upstream certificates are not verified"))
    for name in sorted(config.tls.upstream_routes):
        if not config.tls.upstream_routes[name].verify:
            problems.append(
                (f"tls.upstream_routes.{name}.verify", f"route {name}'s upstream is not verified")
            )
    return verdict(UPSTREAM_VERIFIED, problems, "upstream certificates are verified")


def upstream_encrypted(config: BastionConfig) -> list[Finding]:
    problems = [
        (
            f"routes[{route.name}].upstream",
            f"route {route.name} forwards in clear to {route.upstream}",
        )
        for route in config.routes
        if route.upstream.scheme == "http" and not _loopback(route.upstream.host)
    ]
    return verdict(
        UPSTREAM_ENCRYPTED,
        problems,
        "upstreams are HTTPS or loopback",
        examined=len(config.routes),
        nothing="no route is configured",
    )


def register(registry: Registry) -> None:
    registry.add_attestation(TLS_SERVED, tls_served)
    registry.add_attestation(HSTS, hsts)
    registry.add_attestation(UPSTREAM_VERIFIED, upstream_verified)
    registry.add_attestation(UPSTREAM_ENCRYPTED, upstream_encrypted)
