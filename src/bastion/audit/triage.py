"""What CI should fail on: a baseline of known findings and suppressions with reasons and expiry.

A **baseline** (``--write-baseline FILE`` writes one, ``--baseline FILE`` reads it) lists the
fingerprints of the failed findings of an accepted run; later runs fail only on findings whose
fingerprint it does not hold. A **suppression** accepts one finding (by check id, optionally
narrowed to a location or a fingerprint) for a stated reason until an expiry date; after that
date it stops applying and the report says so, so that accepted risks are reviewed, not forgotten.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bastion.audit.model import Finding, Outcome
from bastion.config.loader import format_validation_error, read_yaml
from bastion.errors import ConfigError

BASELINE_VERSION = 1


class Suppression(BaseModel):
    """One accepted finding. ``check`` is required; ``location`` or ``fingerprint`` narrow it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str = Field(min_length=1)
    location: str | None = None
    fingerprint: str | None = None
    reason: str = Field(min_length=3, description="why the risk is accepted, for the reviewer")
    expires: dt.date

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a reason saying why this finding is accepted")
        return value.strip()

    def matches(self, finding: Finding) -> bool:
        if finding.check.id != self.check:
            return False
        if self.fingerprint is not None and finding.fingerprint != self.fingerprint:
            return False
        locations = {e.location for e in finding.evidence}
        return self.location is None or self.location in locations


class _SuppressionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suppressions: tuple[Suppression, ...] = ()


def load_suppressions(path: Path) -> tuple[Suppression, ...]:
    data = read_yaml(path, what="a suppressions file (YAML or JSON)", prefix="--suppressions ")
    try:
        return _SuppressionFile.model_validate(data).suppressions
    except ValidationError as exc:
        raise ConfigError(
            f"--suppressions {path} is invalid", format_validation_error(exc)
        ) from None


def load_baseline(path: Path) -> frozenset[str]:
    data = read_yaml(path, what="a baseline file written by --write-baseline", prefix="--baseline ")
    entries = data.get("findings")
    if data.get("version") != BASELINE_VERSION or not isinstance(entries, list):
        raise ConfigError(
            f"--baseline {path}: expected a baseline written by bastion audit --write-baseline"
            f" (version {BASELINE_VERSION} with a findings list)"
        )
    return frozenset(
        str(e["fingerprint"]) for e in entries if isinstance(e, Mapping) and "fingerprint" in e
    )


def baseline_document(findings: Iterable[Finding]) -> dict[str, Any]:
    """The baseline of a run: every failed finding, sorted, without anything run-specific."""
    entries = {
        f.fingerprint: {
            "fingerprint": f.fingerprint,
            "check": f.check.id,
            "locations": sorted({e.location for e in f.evidence}),
            "message": f.message,
        }
        for f in findings
        if f.outcome is Outcome.FAIL
    }
    return {"version": BASELINE_VERSION, "findings": [entries[k] for k in sorted(entries)]}


def write_baseline(path: Path, findings: Iterable[Finding]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_document(findings), indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Status:
    """How a failed finding stands for CI: ``new``, ``baselined`` or ``suppressed``."""

    state: str
    reason: str = ""
    expires: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Triage:
    statuses: Mapping[str, Status]  # by fingerprint, failed findings only
    expired: tuple[Suppression, ...]  # suppressions past their date (no longer applied)

    def status(self, finding: Finding) -> Status | None:
        return self.statuses.get(finding.fingerprint)


def triage(
    findings: Sequence[Finding],
    baseline: frozenset[str] = frozenset(),
    suppressions: Sequence[Suppression] = (),
    today: dt.date | None = None,
) -> Triage:
    today = today or dt.datetime.now(dt.UTC).date()
    active = [s for s in suppressions if s.expires >= today]
    expired = tuple(s for s in suppressions if s.expires < today)
    statuses: dict[str, Status] = {}
    for finding in findings:
        if finding.outcome is not Outcome.FAIL:
            continue
        rule = next((s for s in active if s.matches(finding)), None)
        if rule is not None:
            statuses[finding.fingerprint] = Status("suppressed", rule.reason, rule.expires)
        elif finding.fingerprint in baseline:
            statuses[finding.fingerprint] = Status("baselined")
        else:
            statuses[finding.fingerprint] = Status("new")
    return Triage(statuses, expired)
