"""Attestation checks: what a bastion configuration (``--gateway-config``) proves.

Some controls cannot be seen from outside: whether security events are written, whether the
upstream ever sees a client's credential, whether a rate-limit backend failure opens the gate.
When the API sits behind bastion, its configuration answers those questions with certainty.
Locations are the configuration's field paths (``tls.hsts.max_age``, ``routes[api].auth.require``).

Sections that only some bastion versions have (``validation``, ``monitoring``) are read when
present; without them their checks are skipped, never failed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from bastion.audit.checks.verdict import verdict
from bastion.audit.model import CheckInfo, Finding, Kind, Practice, Registry, Severity, skipped
from bastion.config.models import BastionConfig

_ONE_YEAR = 31_536_000
_BODY_LIMIT = 10 * 1024 * 1024


def _info(
    check_id: str,
    title: str,
    practice: Practice,
    severity: Severity,
    criterion: str,
    why: str,
    *refs: str,
) -> CheckInfo:
    return CheckInfo(
        id=check_id,
        title=title,
        practice=practice,
        severity=severity,
        kind=Kind.ATTESTATION,
        criterion=criterion,
        rationale=why,
        references=refs,
    )


def _at(*parts: str) -> str:
    return ".".join(parts)


AUTH_REQUIRED = _info(
    "attest.auth-required",
    "The gateway requires authentication by default",
    Practice.AUTHENTICATION,
    Severity.CRITICAL,
    "auth.enabled is true, auth.default is required or auto, and no route is public or optional.",
    "Fail closed: a route someone forgets to configure must refuse anonymous callers, and every"
    " public route should be a reviewed exception.",
    "OWASP API2:2023",
    "OWASP API5:2023",
    "ASVS 5.0 V8 (Authorization)",
)
QUERY_CREDENTIALS = _info(
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
CREDENTIALS_NOT_FORWARDED = _info(
    "attest.credentials-not-forwarded",
    "The upstream never receives client credentials",
    Practice.LOGGING,
    Severity.MEDIUM,
    "auth.forward_credentials is false.",
    "An upstream that receives Authorization or API-key headers tends to log them; bastion"
    " verifies the credential and forwards identity headers instead (redaction by design).",
    "OWASP API8:2023",
    "ASVS 5.0 V16 (Security Logging and Error Handling)",
)
EVENTS_ENABLED = _info(
    "attest.events-enabled",
    "Security events are written",
    Practice.LOGGING,
    Severity.HIGH,
    "events.sink is not none.",
    "Without security events a breach is neither detected nor scoped; bastion writes one per"
    " decision, with credentials redacted.",
    "OWASP API8:2023",
    "ASVS 5.0 V16 (Security Logging and Error Handling)",
)
ALERTS = _info(
    "attest.monitoring-alerts",
    "Detectors run and alerts reach someone",
    Practice.LOGGING,
    Severity.MEDIUM,
    "monitoring.enabled is true and monitoring.alerts.sinks names at least one destination"
    " (where this bastion version has a monitoring section).",
    "Logs nobody reads detect nothing: credential stuffing, error spikes and enumeration must"
    " page a person while they happen.",
    "OWASP API8:2023",
    "ASVS 5.0 V16 (Security Logging and Error Handling)",
)
ERRORS_MASKED = _info(
    "attest.upstream-errors-masked",
    "Upstream 5xx bodies are masked",
    Practice.LOGGING,
    Severity.MEDIUM,
    "responses.mask_upstream_errors is true.",
    "Stack traces, SQL errors and file paths in error bodies help attackers; the gateway"
    " replaces them with a problem+json carrying a request id that points to the log.",
    "OWASP API8:2023",
    "ASVS 5.0 V16 (Security Logging and Error Handling)",
    "RFC 9457",
)
ADMIN_PRIVATE = _info(
    "attest.admin-private",
    "The admin listener is not public",
    Practice.LOGGING,
    Severity.MEDIUM,
    "admin.listen is a loopback or private address (not 0.0.0.0, :: or a public address).",
    "Metrics and health endpoints reveal traffic, routes and versions; they belong on an"
    " operator network.",
    "OWASP API8:2023",
    "OWASP API9:2023",
)
OPENAPI_VALIDATION = _info(
    "attest.openapi-validation",
    "Requests are validated against the OpenAPI document",
    Practice.VALIDATION,
    Severity.HIGH,
    "openapi is set and enforced: validation.enabled is true, validation.mode is block and no"
    " route is passed through unvalidated (on bastion versions with a validation section).",
    "Validation at the edge refuses malformed and undeclared input before any application code"
    " parses it.",
    "OWASP API3:2023",
    "OWASP API4:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)
VALIDATION_STRICT = _info(
    "attest.validation-strict",
    "Undocumented parameters and properties are refused",
    Practice.VALIDATION,
    Severity.MEDIUM,
    "validation.strict is true (where this bastion version has a validation section).",
    "Strict mode refuses undocumented query parameters and body properties everywhere, which"
    " closes mass assignment and parameter pollution even where a schema forgot"
    " additionalProperties: false.",
    "OWASP API3:2023",
    "OWASP API6:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)
BODY_LIMIT = _info(
    "attest.body-limit",
    "Request bodies are size-limited",
    Practice.VALIDATION,
    Severity.LOW,
    f"limits.max_body_bytes is at most {_BODY_LIMIT} bytes (10 MiB).",
    "Large bodies cost memory and parsing time before any validation can refuse them.",
    "OWASP API4:2023",
)
POLICIES = _info(
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
LOGIN_LIMIT = _info(
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
FAIL_CLOSED = _info(
    "attest.rate-limit-fail-closed",
    "Rate limits do not open when their backend fails",
    Practice.RATE_LIMITING,
    Severity.MEDIUM,
    "rate_limit.on_backend_failure is closed or local (not open).",
    "An attacker who can slow the counter store down would otherwise switch every limit off.",
    "OWASP API4:2023",
)
FORWARDED_TRUST = _info(
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
TLS_SERVED = _info(
    "attest.tls-served",
    "The gateway serves TLS",
    Practice.ENCRYPTION,
    Severity.CRITICAL,
    "tls.enabled is true or tls.certificates lists certificates.",
    "Credentials and data on a plain-HTTP listener are readable by anyone on the path.",
    "ASVS 5.0 V12 (Secure Communication)",
    "RFC 8446",
)
HSTS = _info(
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
UPSTREAM_VERIFIED = _info(
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
UPSTREAM_ENCRYPTED = _info(
    "attest.upstream-encrypted",
    "Remote upstreams are reached over HTTPS",
    Practice.ENCRYPTION,
    Severity.LOW,
    "Every route's upstream is https:// or on a loopback address.",
    "Traffic between gateway and application crosses networks too; zero-trust networks encrypt it.",
    "ASVS 5.0 V12 (Secure Communication)",
)


def _public_host(host: str) -> bool:
    if host in ("", "0.0.0.0", "::", "*"):
        return True
    if host == "localhost":
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a host name: public unless proven otherwise
    return not (address.is_loopback or address.is_private or address.is_link_local)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(config: BastionConfig) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    auth = config.auth
    if not auth.enabled:
        problems.append((_at("auth", "enabled"), "the authentication guard is switched off"))
    elif auth.default in ("optional", "public"):
        problems.append((_at("auth", "default"), f"routes without a rule are {auth.default}"))
    for route in config.routes:
        if auth.enabled and route.auth.require in ("optional", "public"):
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
        problems.append((_at("auth", "enabled"), "no guard refuses credentials in the query"))
    elif not auth.query_credential_names:
        problems.append((_at("auth", "query_credential_names"), "the list is empty"))
    return verdict(QUERY_CREDENTIALS, problems, "credential-like query parameters are refused")


def credentials_not_forwarded(config: BastionConfig) -> list[Finding]:
    problems = []
    if config.auth.forward_credentials:
        problems.append(
            (_at("auth", "forward_credentials"), "client credentials are forwarded upstream")
        )
    return verdict(CREDENTIALS_NOT_FORWARDED, problems, "credentials stop at the gateway")


def _sinks(config: BastionConfig) -> tuple[str, ...]:
    """The event sinks in use: one name or a list of them, depending on the bastion version."""
    listed = getattr(config.events, "sinks", None)
    if listed is not None:
        return tuple(str(name) for name in listed)
    sink: object = config.events.sink
    names = (sink,) if isinstance(sink, str) else tuple(sink) if isinstance(sink, tuple) else ()
    return tuple(str(name) for name in names if name != "none")


def events_enabled(config: BastionConfig) -> list[Finding]:
    sinks = _sinks(config)
    problems = []
    if not sinks:
        problems.append(("events.sink", "security events are discarded (sink: none)"))
    return verdict(EVENTS_ENABLED, problems, f"security events go to {', '.join(sinks)}")


def monitoring_alerts(config: BastionConfig) -> list[Finding]:
    monitoring = getattr(config, "monitoring", None)
    if monitoring is None:
        return [skipped(ALERTS, "this bastion version has no monitoring section")]
    problems = []
    if not monitoring.enabled:
        problems.append(("monitoring.enabled", "the detectors are switched off"))
    elif not monitoring.alerts.sinks:
        problems.append(("monitoring.alerts.sinks", "alerts have nowhere to go"))
    count = len(monitoring.alerts.sinks)
    return verdict(ALERTS, problems, f"detectors run and alert {count} destination(s)")


def errors_masked(config: BastionConfig) -> list[Finding]:
    problems = []
    if not config.responses.mask_upstream_errors:
        problems.append(("responses.mask_upstream_errors", "upstream 5xx bodies reach clients"))
    return verdict(ERRORS_MASKED, problems, "upstream 5xx bodies are replaced by problem+json")


def admin_private(config: BastionConfig) -> list[Finding]:
    problems = []
    host = config.admin.listen.host
    if config.admin.enabled and _public_host(host):
        problems.append(("admin.listen", f"the admin listener is open on {config.admin.listen}"))
    return verdict(ADMIN_PRIVATE, problems, "the admin listener is private or off")


def openapi_validation(config: BastionConfig) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    validation = getattr(config, "validation", None)
    if config.openapi is None:
        problems.append(("openapi", "no OpenAPI document is enforced"))
    elif validation is not None and not validation.enabled:
        problems.append(("validation.enabled", "the document is loaded but not enforced"))
    elif validation is not None and validation.mode != "block":
        problems.append(("validation.mode", f"mode {validation.mode}: violations go through"))
    if validation is not None and validation.enabled:
        problems += [
            (f"validation.pass_through[{index}]", f"route {name} is forwarded unvalidated")
            for index, name in enumerate(validation.pass_through)
        ]
    return verdict(OPENAPI_VALIDATION, problems, f"requests are validated against {config.openapi}")


def validation_strict(config: BastionConfig) -> list[Finding]:
    validation = getattr(config, "validation", None)
    if validation is None:
        return [skipped(VALIDATION_STRICT, "this bastion version has no validation section")]
    if config.openapi is None or not validation.enabled:
        return [skipped(VALIDATION_STRICT, "validation is off (see attest.openapi-validation)")]
    problems = []
    if not validation.strict:
        problems.append(("validation.strict", "undocumented parameters and properties pass"))
    return verdict(VALIDATION_STRICT, problems, "strict mode refuses anything undocumented")


def body_limit(config: BastionConfig) -> list[Finding]:
    limit = config.limits.max_body_bytes
    problems = []
    if limit > _BODY_LIMIT:
        problems.append(("limits.max_body_bytes", f"bodies up to {limit} bytes are buffered"))
    return verdict(BODY_LIMIT, problems, f"bodies are limited to {limit} bytes")


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


def _tls_on(config: BastionConfig) -> bool:
    return config.tls.enabled or bool(config.tls.certificates)


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


_CHECKS: tuple[tuple[CheckInfo, Callable[[BastionConfig], list[Finding]]], ...] = (
    (AUTH_REQUIRED, auth_required),
    (QUERY_CREDENTIALS, query_credentials),
    (CREDENTIALS_NOT_FORWARDED, credentials_not_forwarded),
    (EVENTS_ENABLED, events_enabled),
    (ALERTS, monitoring_alerts),
    (ERRORS_MASKED, errors_masked),
    (ADMIN_PRIVATE, admin_private),
    (OPENAPI_VALIDATION, openapi_validation),
    (VALIDATION_STRICT, validation_strict),
    (BODY_LIMIT, body_limit),
    (POLICIES, rate_limit_policies),
    (LOGIN_LIMIT, login_limit),
    (FAIL_CLOSED, fail_closed),
    (FORWARDED_TRUST, forwarded_trust),
    (TLS_SERVED, tls_served),
    (HSTS, hsts),
    (UPSTREAM_VERIFIED, upstream_verified),
    (UPSTREAM_ENCRYPTED, upstream_encrypted),
)


def register(registry: Registry) -> None:
    for info, check in _CHECKS:
        registry.add_attestation(info, check)
