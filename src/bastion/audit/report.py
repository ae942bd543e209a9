"""One audit's outcome as every reporter sees it: findings, scores, triage and the CI verdict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from bastion.audit.model import CheckInfo, Finding, Outcome, Severity
from bastion.audit.scoring import Scorecard, score
from bastion.audit.triage import Status, Triage, triage
from bastion.version import __version__


@dataclass(frozen=True)
class AuditReport:
    target: str  # the URL, or the document when --static
    findings: tuple[Finding, ...]
    checks: tuple[CheckInfo, ...]  # every check that appears in the findings, in report order
    scorecard: Scorecard
    triage: Triage
    fail_on: Severity
    openapi: str | None = None
    gateway_config: str | None = None
    profile: str = "api"
    aggressive: bool = False
    requests: int = 0
    budget: int = 0
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    version: str = __version__

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome is Outcome.FAIL]

    def status(self, finding: Finding) -> Status | None:
        return self.triage.status(finding)

    @property
    def gating(self) -> list[Finding]:
        """New failed findings at or above ``--fail-on``: what makes the run exit 1."""
        return [
            f
            for f in self.failed
            if f.check.severity >= self.fail_on
            and (s := self.status(f)) is not None
            and s.state == "new"
        ]

    @property
    def exit_code(self) -> int:
        return 1 if self.gating else 0

    def count(self, state: str) -> int:
        return sum(1 for f in self.failed if (s := self.status(f)) is not None and s.state == state)


def build_report(
    target: str,
    findings: Sequence[Finding],
    *,
    fail_on: Severity = Severity.HIGH,
    triaged: Triage | None = None,
    openapi: str | None = None,
    gateway_config: str | None = None,
    profile: str = "api",
    aggressive: bool = False,
    requests: int = 0,
    budget: int = 0,
    started: dt.datetime | None = None,
) -> AuditReport:
    checks: dict[str, CheckInfo] = {}
    for finding in findings:
        checks.setdefault(finding.check.id, finding.check)
    return AuditReport(
        target=target,
        findings=tuple(findings),
        checks=tuple(checks.values()),
        scorecard=score(findings),
        triage=triaged if triaged is not None else triage(findings),
        fail_on=fail_on,
        openapi=openapi,
        gateway_config=gateway_config,
        profile=profile,
        aggressive=aggressive,
        requests=requests,
        budget=budget,
        started=started or dt.datetime.now(dt.UTC),
    )
