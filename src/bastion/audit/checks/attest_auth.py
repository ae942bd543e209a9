"""Attestation of practice 1, authentication: does the gateway fail closed, and does it refuse
credentials sent in a URL? (What attestation is: :mod:`bastion.audit.checks.attest_common`.)"""

from __future__ import annotations

from bastion.audit.checks.attest_common import attestation_info, field_path
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import Finding, Practice, Registry, Severity
from bastion.config.models import BastionConfig

AUTH_REQUIRED = attestation_info(
    "attest.auth-required",
    "The gateway requires authentication by default",
    Practice.AUTHENTICATION,
    Severity.CRITICAL,
    "auth.enabled is true, auth.default is required or auto, and no route is public or optional"
    " except login routes (login: true: public by necessity, under the login lockout).",
    "Fail closed: a route someone forgets to configure must refuse anonymous callers, and every"
    " public route should be a reviewed exception.",
    "OWASP API2:2023",
    "OWASP API5:2023",
    "ASVS 5.0 V8 (Authorization)",
)

QUERY_CREDENTIALS = attestation_info(
    "attest.query-credentials-refused",
    "Credentials in the query string are refused",
    Practice.AUTHENTICATION,
    Severity.HIGH,
    "The authentication guard is on and auth.query_credential_names is not empty.",
    "A credential in a URL is already leaked to logs and proxies; refusing it (and logging the"
    " event) is what makes clients stop doing it.",
    "ASVS 5.0 V14.2.1",
    "RFC 6750 §5.3",
    "RFC 9700 §2.4",
)


def auth_required(config: BastionConfig) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    auth = config.auth
    if not auth.enabled:
        problems.append((field_path("auth", "enabled"), "the authentication guard is switched off"))
    elif auth.default in ("optional", "public"):
        problems.append(
            (field_path("auth", "default"), f"routes without a rule are {auth.default}")
        )
    for route in config.routes:
        if auth.enabled and route.auth.require in ("optional", "public") and not route.login:
            problems.append(
                (
                    f"routes[{route.name}].auth.require",
                    f"route {route.name} is {route.auth.require}",
                )
            )
    ok = "authentication is required by default" + (
        " (auto: once any credential is configured)" if auth.default == "auto" else ""
    )
    return verdict(AUTH_REQUIRED, problems, ok)


def query_credentials(config: BastionConfig) -> list[Finding]:
    auth = config.auth
    problems: list[tuple[str, str]] = []
    if not auth.enabled:
        problems.append(
            (field_path("auth", "enabled"), "no guard refuses credentials in the query")
        )
    elif not auth.query_credential_names:
        problems.append((field_path("auth", "query_credential_names"), "the list is empty"))
    return verdict(QUERY_CREDENTIALS, problems, "credential-like query parameters are refused")


def register(registry: Registry) -> None:
    registry.add_attestation(AUTH_REQUIRED, auth_required)
    registry.add_attestation(QUERY_CREDENTIALS, query_credentials)
