"""Markdown for a pull-request comment: the grade, a table per practice, and what is new.

New findings come first and in full; baselined and suppressed ones fold away in ``<details>``,
so a reviewer sees at a glance what this change introduced.
"""

from __future__ import annotations

from bastion.audit.model import Finding, Outcome
from bastion.audit.report import AuditReport


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(report: AuditReport, finding: Finding) -> str:
    where = next((e.location for e in finding.evidence if e.location), "")
    return (
        f"| {finding.check.severity.label} | `{finding.check.id}` | "
        f"{_cell(finding.message)} | {'`' + _cell(where) + '`' if where else ''} |"
    )


MAX_ROWS = 100
"""Rows per table: a pull-request comment has a size limit (65,536 characters on GitHub)."""


def _table(report: AuditReport, findings: list[Finding]) -> list[str]:
    lines = ["| severity | check | finding | where |", "|---|---|---|---|"]
    ordered = sorted(findings, key=lambda f: -f.check.severity)
    lines += [_row(report, f) for f in ordered[:MAX_ROWS]]
    if len(ordered) > MAX_ROWS:
        lines.append(
            f"| | | … and {len(ordered) - MAX_ROWS} more (see the JSON or HTML report) | |"
        )
    return lines


def render(report: AuditReport) -> str:
    card = report.scorecard
    score = "n/a" if card.score is None else f"{card.score}/100"
    icon = ":x:" if report.gating else ":white_check_mark:"
    lines = [
        f"## {icon} bastion audit: grade **{card.grade}** ({score})",
        "",
        f"Target `{report.target}`, profile `{report.profile}`"
        + (f", {report.requests} of {report.budget} requests" if report.budget else "")
        + ".",
        "",
        "| practice | score | passed | failed | skipped |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in card.practices:
        value = "n/a" if p.score is None else str(p.score)
        lines.append(f"| {p.practice.value} | {value} | {p.passed} | {p.failed} | {p.skipped} |")
    groups: dict[str, list[Finding]] = {"new": [], "baselined": [], "suppressed": []}
    for finding in report.failed:
        status = report.status(finding)
        groups[status.state if status else "new"].append(finding)
    lines.append("")
    if groups["new"]:
        lines += [f"### New findings ({len(groups['new'])})", ""]
        lines += _table(report, groups["new"])
        curls = [(f, e.curl) for f in groups["new"] for e in f.evidence if e.curl][:20]
        if curls:
            lines += ["", "<details><summary>Reproduce</summary>", "", "```sh"]
            lines += [f"# {f.check.id}\n{curl}" for f, curl in curls]
            lines += ["```", "", "</details>"]
    else:
        lines.append("No new findings.")
    for state in ("baselined", "suppressed"):
        if groups[state]:
            lines += ["", f"<details><summary>{len(groups[state])} {state}</summary>", ""]
            lines += _table(report, groups[state])
            lines += ["", "</details>"]
    if report.triage.expired:
        lines += ["", "### Expired suppressions", ""]
        for s in report.triage.expired:
            lines.append(
                f"- `{s.check}` {s.location or s.fingerprint or ''}: expired"
                f" {s.expires.isoformat()} ({_cell(s.reason)})"
            )
    errors = [f for f in report.findings if f.outcome is Outcome.ERROR]
    if errors:
        lines += ["", "### Checks that could not complete", ""]
        lines += [f"- `{f.check.id}`: {_cell(f.message)}" for f in errors]
    verdict = (
        f"**{len(report.gating)} new finding(s) at or above {report.fail_on.label}**:"
        " the audit fails."
        if report.gating
        else f"Nothing new at or above {report.fail_on.label}: the audit passes."
    )
    lines += ["", verdict, ""]
    return "\n".join(lines)
