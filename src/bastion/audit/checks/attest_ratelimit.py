"""Attestation of practice 2, rate limiting: is every route limited, is the login preset on, does a
backend failure keep limits closed, and who may claim a client address? (What attestation is:
:mod:`bastion.audit.checks.attest_common`.)"""

from __future__ import annotations

from bastion.audit.checks.attest_common import attestation_info
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import Finding, Practice, Registry, Severity
from bastion.config.models import BastionConfig

POLICIES = attestation_info(
    "attest.rate-limit-policies",
    "Every route is rate limited",
    Practice.RATE_LIMITING,
    Severity.HIGH,
    "At least one rate_limit policy exists and every route is covered by a policy not set to"
    " 'off' there.",
    "Unlimited routes allow scraping, brute force and denial of wallet.",
    "OWASP API4:2023",
    "OWASP API6:2023",
)

LOGIN_LIMIT = attestation_info(
    "attest.login-limit",
    "Login and token endpoints lock out repeated failures",
    Practice.RATE_LIMITING,
    Severity.HIGH,
    "rate_limit.login.enabled is true and rate_limit.login.paths is not empty.",
    "Credential stuffing and password spraying target login and token endpoints; a stricter,"
    " failure-counting limit with lockout stops them.",
    "OWASP API2:2023",
    "ASVS 5.0 V6 (Authentication)",
)

FAIL_CLOSED = attestation_info(
    "attest.rate-limit-fail-closed",
    "Rate limits do not open when their backend fails",
    Practice.RATE_LIMITING,
    Severity.MEDIUM,
    "rate_limit.on_backend_failure is closed or local (not open).",
    "An attacker who can slow the counter store down would otherwise switch every limit off.",
    "OWASP API4:2023",
)

FORWARDED_TRUST = attestation_info(
    "attest.forwarded-for-trusted-narrowly",
    "X-Forwarded-For is believed only from known proxies",
    Practice.RATE_LIMITING,
    Severity.HIGH,
    "No entry of proxy.trusted_proxies is a whole address space (0.0.0.0/0 or ::/0).",
    "A spoofed X-Forwarded-For from an untrusted client gives it a new identity per request"
    " and defeats per-IP limits and lockouts.",
    "OWASP API4:2023",
    "RFC 7239 §8.1",
)


def rate_limit_policies(config: BastionConfig) -> list[Finding]:
    policies = config.rate_limit.policies
    problems: list[tuple[str, str]] = []
    if not policies:
        problems.append(("rate_limit.policies", "no rate-limit policy is configured"))
    else:
        for route in config.routes:
            covering = [
                p.name
                for p in policies
                if (not p.routes or route.name in p.routes)
                and route.rate_limits.get(p.name) != "off"
            ]
            if not covering:
                problems.append(
                    (f"routes[{route.name}].rate_limits", f"route {route.name} has no limit")
                )
    return verdict(POLICIES, problems, f"{len(policies)} rate-limit policies cover every route")


def login_limit(config: BastionConfig) -> list[Finding]:
    login = config.rate_limit.login
    problems = []
    if not login.enabled:
        problems.append(("rate_limit.login.enabled", "the login preset is switched off"))
    elif not login.paths:
        problems.append(("rate_limit.login.paths", "no path is treated as a login"))
    ok = f"login failures lock out after {login.max_failures} on {', '.join(login.paths)}"
    return verdict(LOGIN_LIMIT, problems, ok)


def fail_closed(config: BastionConfig) -> list[Finding]:
    mode = config.rate_limit.on_backend_failure
    problems = []
    if mode == "open":
        problems.append(
            ("rate_limit.on_backend_failure", "limits switch off when the backend fails")
        )
    return verdict(FAIL_CLOSED, problems, f"a backend failure is handled {mode}")


def forwarded_trust(config: BastionConfig) -> list[Finding]:
    problems = [
        (f"proxy.trusted_proxies[{index}]", f"every address ({network}) is a trusted proxy")
        for index, network in enumerate(config.proxy.trusted_proxies)
        if network.prefixlen == 0
    ]
    return verdict(
        FORWARDED_TRUST, problems, "forwarding headers are believed from known proxies only"
    )


def register(registry: Registry) -> None:
    registry.add_attestation(POLICIES, rate_limit_policies)
    registry.add_attestation(LOGIN_LIMIT, login_limit)
    registry.add_attestation(FAIL_CLOSED, fail_closed)
    registry.add_attestation(FORWARDED_TRUST, forwarded_trust)
