"""Attestation of practice 5, logging: are security events written, do credentials stop at the
gateway (redaction by design), do alerts reach someone, are error bodies masked, is the admin
listener private? (What attestation is: :mod:`bastion.audit.checks.attest_common`.)"""

from __future__ import annotations

import ipaddress

from bastion.audit.checks.attest_common import attestation_info, field_path
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import Finding, Practice, Registry, Severity, skipped
from bastion.config.models import BastionConfig

CREDENTIALS_NOT_FORWARDED = attestation_info(
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

EVENTS_ENABLED = attestation_info(
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

ALERTS = attestation_info(
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

ERRORS_MASKED = attestation_info(
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

ADMIN_PRIVATE = attestation_info(
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


def credentials_not_forwarded(config: BastionConfig) -> list[Finding]:
    problems = []
    if config.auth.forward_credentials:
        problems.append(
            (field_path("auth", "forward_credentials"), "client credentials are forwarded upstream")
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


def register(registry: Registry) -> None:
    registry.add_attestation(CREDENTIALS_NOT_FORWARDED, credentials_not_forwarded)
    registry.add_attestation(EVENTS_ENABLED, events_enabled)
    registry.add_attestation(ALERTS, monitoring_alerts)
    registry.add_attestation(ERRORS_MASKED, errors_masked)
    registry.add_attestation(ADMIN_PRIVATE, admin_private)
