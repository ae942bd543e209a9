"""The terminal report: the grade first, a bar per practice, then what failed and how to see it.

Plain ANSI through click (colour only when the stream is a terminal, or when asked), so that the
same text reads well in a CI log.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from bastion.audit.model import Finding, Outcome, Severity
from bastion.audit.report import AuditReport

_BAR = 24
_SEVERITY_COLOURS = {
    Severity.CRITICAL: "magenta",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "white",
}


def grade_colour(grade: str) -> str:
    return {"A": "green", "B": "green", "C": "yellow", "D": "red", "F": "red"}.get(
        grade[:1], "white"
    )


def render(report: AuditReport, colour: bool = False) -> str:
    def paint(text: str, **style: object) -> str:
        return click.style(text, **style) if colour else text  # type: ignore[arg-type]

    lines: list[str] = []
    card = report.scorecard
    lines.append(paint(f"bastion audit {report.version}", bold=True) + f"  {report.target}")
    facts = [f"profile {report.profile}"]
    if report.openapi:
        facts.append(f"openapi {report.openapi}")
    if report.gateway_config:
        facts.append(f"gateway config {report.gateway_config}")
    if report.budget:
        facts.append(f"{report.requests} of {report.budget} requests")
    if report.aggressive:
        facts.append("aggressive")
    lines.append("  " + ", ".join(facts))
    lines.append("")
    score = "n/a" if card.score is None else f"{card.score}/100"
    grade = paint(f" {card.grade} ", bold=True, reverse=True, fg=grade_colour(card.grade))
    lines.append(f"  Grade {grade}   score {score}")
    lines.append("")
    for p in card.practices:
        if p.score is None:
            bar, value = "·" * _BAR, " n/a"
        else:
            filled = round(_BAR * p.score / 100)
            bar = paint("█" * filled, fg=grade_colour(_letter(p.score))) + "░" * (_BAR - filled)
            value = f"{p.score:4d}"
        counts = f"{p.passed} passed, {p.failed} failed"
        if p.skipped:
            counts += f", {p.skipped} skipped"
        if p.errored:
            counts += f", {p.errored} errors"
        lines.append(f"  {p.practice.value:<15} {bar} {value}   {counts}")
    failed = report.failed
    if failed:
        lines += ["", paint("Failed checks", bold=True)]
        lines += _findings(report, failed, paint)
    errors = [f for f in report.findings if f.outcome is Outcome.ERROR]
    if errors:
        lines += ["", paint("Checks that could not complete", bold=True)]
        lines += [f"  {f.check.id}: {f.message}" for f in errors]
    if report.triage.expired:
        lines += ["", paint("Expired suppressions (no longer applied)", bold=True, fg="yellow")]
        for s in report.triage.expired:
            where = s.location or s.fingerprint or "every location"
            lines.append(f"  {s.check} at {where}: expired {s.expires.isoformat()} ({s.reason})")
    lines.append("")
    lines.append(_verdict(report, paint))
    return "\n".join(lines) + "\n"


def _letter(value: int) -> str:
    return "A" if value >= 90 else "B" if value >= 80 else "C" if value >= 70 else "F"


def _findings(report: AuditReport, failed: list[Finding], paint: Callable[..., str]) -> list[str]:
    lines: list[str] = []
    ordered = sorted(failed, key=lambda f: -f.check.severity)
    current = ""
    for finding in ordered:
        info = finding.check
        if info.id != current:
            current = info.id
            label = paint(f"{info.severity.label.upper():<8}", fg=_SEVERITY_COLOURS[info.severity])
            lines.append(f"  {label} {info.id}  {info.title}")
        status = report.status(finding)
        tag = ""
        if status is not None and status.state == "baselined":
            tag = paint(" [baselined]", dim=True)
        elif status is not None and status.state == "suppressed" and status.expires:
            tag = paint(
                f" [suppressed until {status.expires.isoformat()}: {status.reason}]", dim=True
            )
        lines.append(f"     x {finding.message}{tag}")
        for evidence in finding.evidence:
            if evidence.location:
                lines.append(f"       at {evidence.location}")
            if evidence.response:
                lines.append(f"       got {evidence.response.splitlines()[0][:160]}")
            if evidence.curl:
                lines.append(f"       {evidence.curl}")
    return lines


def _verdict(report: AuditReport, paint: Callable[..., str]) -> str:
    gating = report.gating
    parts = [f"{len(report.failed)} failed"]
    for state in ("new", "baselined", "suppressed"):
        if report.count(state):
            parts.append(f"{report.count(state)} {state}")
    summary = ", ".join(parts)
    if gating:
        return paint(
            f"FAIL: {len(gating)} new finding(s) at or above {report.fail_on.label} ({summary})",
            fg="red",
            bold=True,
        )
    return paint(f"PASS: nothing new at or above {report.fail_on.label} ({summary})", fg="green")
