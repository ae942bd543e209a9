"""SARIF 2.1.0: the format code-scanning UIs (GitHub, GitLab, Azure DevOps) import.

One rule per check (with ``security-severity`` so GitHub ranks it), one result per failed finding
with its fingerprint in ``partialFingerprints``; baselined findings are ``unchanged``, suppressed
ones carry an accepted external suppression with its justification. Static findings point to the
line of the OpenAPI document, attestation findings to the line of the gateway config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bastion.audit.model import CheckInfo, Finding, Kind, Outcome, Severity
from bastion.audit.openapi import pointer
from bastion.audit.report import AuditReport
from bastion.audit.reporters.lines import Locator, field_parts, locator, pointer_parts

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _local(source: str | None) -> Path | None:
    if source is None or urlsplit(source).scheme in ("http", "https"):
        return None
    return Path(source)


def _uri(path: Path) -> str:
    """Repository-relative when the file is under the working directory (code scanning needs it)."""
    try:
        relative = Path(os.path.relpath(path.resolve(), Path.cwd()))
    except ValueError:
        return path.resolve().as_uri()
    if relative.parts and relative.parts[0] == "..":
        return path.resolve().as_uri()
    return relative.as_posix()


def _rule(info: CheckInfo) -> dict[str, Any]:
    refs = ", ".join(info.references)
    return {
        "id": info.id,
        "name": "".join(w.title() for w in info.id.split(".", 1)[-1].split("-")),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": info.criterion},
        "help": {
            "text": f"{info.rationale}\nPass criterion: {info.criterion}\nReferences: {refs}",
            "markdown": f"{info.rationale}\n\n**Pass criterion:** {info.criterion}\n\n"
            f"**References:** {refs}",
        },
        "defaultConfiguration": {"level": LEVELS[info.severity]},
        "properties": {
            "tags": ["security", info.practice.value, info.kind.value],
            "security-severity": SECURITY_SEVERITY[info.severity],
            "precision": "high",
        },
    }


def _where(finding: Finding) -> str:
    return next((e.location for e in finding.evidence if e.location), "")


def _in_document(finding: Finding) -> str | None:
    """The JSON pointer of a finding's place in the OpenAPI document, if it has one there."""
    where = _where(finding)
    if finding.check.kind is Kind.STATIC:
        return where
    if finding.check.kind is Kind.ATTESTATION or " /" not in where:
        return None
    method, _, path = where.partition(" ")  # a live finding's "GET /orders": the operation
    return pointer("paths", path, method.lower())


class _Places:
    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.document = _local(report.openapi)
        self.config = _local(report.gateway_config)
        failed = report.failed
        self.in_document: Locator = lambda _: 1
        if self.document is not None:
            wanted = [p for f in failed if (p := _in_document(f))]
            self.in_document = locator(self.document, pointer_parts, wanted)
        self.in_config: Locator = lambda _: 1
        if self.config is not None:
            attested = [_where(f) for f in failed if f.check.kind is Kind.ATTESTATION]
            self.in_config = locator(self.config, field_parts, attested)

    def location(self, finding: Finding) -> dict[str, Any]:
        where = _where(finding)
        in_document = _in_document(finding)
        if finding.check.kind is Kind.ATTESTATION and self.config is not None:
            uri, line = _uri(self.config), self.in_config(where)
        elif in_document is not None and self.document is not None:
            uri, line = _uri(self.document), self.in_document(in_document)
        else:
            uri, line = self.report.target, 1
        place: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": uri},
                "region": {"startLine": line},
            }
        }
        if where:
            place["logicalLocations"] = [{"fullyQualifiedName": where}]
        return place


def _result(report: AuditReport, finding: Finding, index: int, places: _Places) -> dict[str, Any]:
    status = report.status(finding)
    text = finding.message
    curls = [e.curl for e in finding.evidence if e.curl]
    if curls:
        text += "\nReproduce: " + curls[0]
    result: dict[str, Any] = {
        "ruleId": finding.check.id,
        "ruleIndex": index,
        "level": LEVELS[finding.check.severity],
        "message": {"text": text},
        "locations": [places.location(finding)],
        "partialFingerprints": {"bastionFindingHash/v1": finding.fingerprint},
        "baselineState": "unchanged" if status and status.state == "baselined" else "new",
    }
    if status is not None and status.state == "suppressed":
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": status.reason}
        ]
    return result


def sarif_dict(report: AuditReport) -> dict[str, Any]:
    rules = [_rule(info) for info in report.checks]
    index = {info.id: i for i, info in enumerate(report.checks)}
    places = _Places(report)
    results = [_result(report, f, index[f.check.id], places) for f in report.failed]
    notifications = [
        {
            "level": "error",
            "message": {"text": f.message},
            "descriptor": {"id": f.check.id, "index": index[f.check.id]},
        }
        for f in report.findings
        if f.outcome is Outcome.ERROR
    ]
    card = report.scorecard
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion audit",
                        "version": report.version,
                        "semanticVersion": report.version,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
                "properties": {
                    "target": report.target,
                    "grade": card.grade,
                    "score": card.score,
                    "practices": {p.practice.value: p.score for p in card.practices},
                },
            }
        ],
    }


def render(report: AuditReport) -> str:
    return orjson.dumps(sarif_dict(report), option=orjson.OPT_INDENT_2).decode() + "\n"
