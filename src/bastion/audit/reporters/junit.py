"""JUnit XML, the test-report format every CI shows (GitLab's ``artifacts:reports:junit``).

One test suite per practice, one test case per check: a check fails when it has a failed finding
that is neither baselined nor suppressed (those are listed in the case's output), is skipped
when it did not apply, and errs when it could not complete.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from bastion.audit.model import Finding, Outcome
from bastion.audit.report import AuditReport


def _describe(finding: Finding) -> str:
    lines = [finding.message]
    for evidence in finding.evidence:
        if evidence.location:
            lines.append(f"  at {evidence.location}")
        if evidence.response:
            lines.append(f"  got {evidence.response}")
        if evidence.curl:
            lines.append(f"  reproduce: {evidence.curl}")
    return "\n".join(lines)


def render(report: AuditReport) -> str:
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for finding in report.findings:
        by_check[finding.check.id].append(finding)
    root = ET.Element("testsuites", name=f"bastion audit {report.target}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for card in report.scorecard.practices:
        checks = [info for info in report.checks if info.practice is card.practice]
        if not checks:
            continue
        suite = ET.SubElement(root, "testsuite", name=card.practice.value)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for info in checks:
            findings = by_check[info.id]
            case = ET.SubElement(
                suite, "testcase", classname=f"bastion.audit.{info.practice.value}",
                name=f"{info.id}: {info.title}",
            )  # fmt: skip
            counts["tests"] += 1
            failing = [
                f
                for f in findings
                if f.outcome is Outcome.FAIL
                and (s := report.status(f)) is not None
                and s.state == "new"
            ]
            accepted = [f for f in findings if f.outcome is Outcome.FAIL and f not in failing]
            errors = [f for f in findings if f.outcome is Outcome.ERROR]
            if failing:
                counts["failures"] += 1
                node = ET.SubElement(
                    case, "failure", type=info.severity.label,
                    message=f"{len(failing)} finding(s): {failing[0].message}",
                )  # fmt: skip
                node.text = "\n\n".join(_describe(f) for f in failing)
            elif errors:
                counts["errors"] += 1
                ET.SubElement(case, "error", message=errors[0].message)
            elif all(f.outcome is Outcome.SKIP for f in findings):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=findings[0].message if findings else "")
            if accepted:
                out = ET.SubElement(case, "system-out")
                out.text = "\n\n".join(
                    f"[{s.state if (s := report.status(f)) else ''}] {_describe(f)}"
                    for f in accepted
                )
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
