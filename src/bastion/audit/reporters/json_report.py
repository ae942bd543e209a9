"""The JSON report: everything the audit found, for scripts and dashboards.

Findings appear in report order with their fingerprint and CI status; only ``started`` and
``version`` differ between two runs against an unchanged target.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.audit.model import CheckInfo, Finding
from bastion.audit.report import AuditReport


def check_dict(info: CheckInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "title": info.title,
        "practice": info.practice.value,
        "severity": info.severity.label,
        "kind": info.kind.value,
        "criterion": info.criterion,
        "rationale": info.rationale,
        "references": list(info.references),
    }


def finding_dict(report: AuditReport, finding: Finding) -> dict[str, Any]:
    status = report.status(finding)
    return {
        "check": finding.check.id,
        "practice": finding.check.practice.value,
        "severity": finding.check.severity.label,
        "outcome": finding.outcome.value,
        "message": finding.message,
        "fingerprint": finding.fingerprint,
        "status": status.state if status else None,
        "suppression": (
            {"reason": status.reason, "expires": status.expires.isoformat()}
            if status is not None and status.expires is not None
            else None
        ),
        "evidence": [
            {
                k: v
                for k, v in (
                    ("summary", e.summary),
                    ("location", e.location),
                    ("curl", e.curl),
                    ("response", e.response),
                )
                if v
            }
            for e in finding.evidence
        ],
        "details": {str(k): v for k, v in finding.details.items()},
    }


def report_dict(report: AuditReport) -> dict[str, Any]:
    card = report.scorecard
    return {
        "tool": {"name": "bastion audit", "version": report.version},
        "target": report.target,
        "openapi": report.openapi,
        "gateway_config": report.gateway_config,
        "profile": report.profile,
        "aggressive": report.aggressive,
        "started": report.started.isoformat(),
        "requests": {"sent": report.requests, "budget": report.budget},
        "grade": card.grade,
        "score": card.score,
        "practices": [
            {
                "practice": p.practice.value,
                "score": p.score,
                "passed": p.passed,
                "failed": p.failed,
                "skipped": p.skipped,
                "errors": p.errored,
            }
            for p in card.practices
        ],
        "summary": {
            "failed": len(report.failed),
            "new": report.count("new"),
            "baselined": report.count("baselined"),
            "suppressed": report.count("suppressed"),
            "fail_on": report.fail_on.label,
            "exit_code": report.exit_code,
        },
        "expired_suppressions": [
            {
                "check": s.check,
                "location": s.location,
                "fingerprint": s.fingerprint,
                "reason": s.reason,
                "expires": s.expires.isoformat(),
            }
            for s in report.triage.expired
        ],
        "checks": [check_dict(info) for info in report.checks],
        "findings": [finding_dict(report, f) for f in report.findings],
    }


def render(report: AuditReport) -> str:
    data = report_dict(report)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
