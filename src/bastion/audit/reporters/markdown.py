"""Markdown for a pull-request comment: the grade, a table per practice, and what is new.

New findings come first and in full; baselined and suppressed ones fold away in ``<details>``,
so a reviewer sees at a glance what this change introduced.
"""

from __future__ import annotations

import html
import re

from bastion.audit.model import Finding, Outcome
from bastion.audit.report import AuditReport

# Markdown's inline punctuation: escaped so that text from the target (messages, locations,
# reasons) renders as text in a pull-request comment and never as links, mentions or markup.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def _cell(text: str) -> str:
    """``text`` as inert Markdown table-cell content: HTML escaped, Markdown punctuation
    escaped, one line."""
    flat = " ".join(text.split())
    return _MARKDOWN.sub(r"\\\1", html.escape(flat, quote=False))


def _code(text: str) -> str:
    """``text`` as an inline code span that no backtick inside it can close: the fence is one
    backtick longer than the longest run in the text (CommonMark)."""
    flat = " ".join(text.split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _fence(lines: list[str]) -> list[str]:
    """A ``sh`` code block that no line of ``lines`` can close (a longer backtick fence)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`{3,}", line)), default=2)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}sh", *lines, fence]


def _row(report: AuditReport, finding: Finding) -> str:
    where = next((e.location for e in finding.evidence if e.location), "")
    return (
        f"| {finding.check.severity.label} | `{finding.check.id}` | "
        f"{_cell(finding.message)} | {_code(where) if where else ''} |"
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
            lines += ["", "<details><summary>Reproduce</summary>", ""]
            lines += _fence([f"# {f.check.id}\n{curl}" for f, curl in curls])
            lines += ["", "</details>"]
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
                f"- `{s.check}` {_code(s.location or s.fingerprint or '')}: expired"
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
