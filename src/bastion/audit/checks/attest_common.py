"""Attestation checks: what a bastion configuration (``--gateway-config``) proves.

Some controls cannot be seen from outside: whether security events are written, whether the
upstream ever sees a client's credential, whether a rate-limit backend failure opens the gate.
When the API sits behind bastion, its configuration answers those questions with certainty.
Locations are the configuration's field paths (``tls.hsts.max_age``, ``routes[api].auth.require``).
One module per practice (``attest_auth``, ``attest_ratelimit``, ``attest_validation``,
``attest_transport``, ``attest_logging``) holds the checks.

Sections that only some bastion versions have (``validation``, ``monitoring``) are read when
present; without them their checks are skipped, never failed.
"""

from __future__ import annotations

from bastion.audit.model import CheckInfo, Kind, Practice, Severity


def attestation_info(
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


def field_path(*parts: str) -> str:
    """``field_path("auth", "default")`` -> ``auth.default`` (a location in the config)."""
    return ".".join(parts)
