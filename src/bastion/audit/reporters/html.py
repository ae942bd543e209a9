"""A single-file HTML report a person enjoys reading: no script, no external asset, inline CSS.

The grade and a card per practice on top; then, per practice, every failed check with its
findings, evidence and a reproducible ``curl``; passes and skips folded away at the end.
Every value from the target or the document is escaped.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from bastion.audit.model import CheckInfo, Finding, Outcome, Practice, Severity
from bastion.audit.report import AuditReport
from bastion.audit.runner import outcome_of

_CSS = """
:root{--ink:#1d2433;--muted:#5b6478;--line:#e3e7ef;--bg:#f6f8fb;--card:#fff;
--crit:#7b1fa2;--high:#c62828;--medium:#ef6c00;--low:#0277bd;--info:#546e7a;
--good:#2e7d32;--ok:#9e9d24;--bad:#c62828}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1040px;margin:0 auto;padding:32px 20px 64px}
header{display:flex;gap:28px;align-items:center;background:var(--card);border:1px solid var(--line);
border-radius:16px;padding:24px 28px;box-shadow:0 1px 3px rgba(20,30,60,.06)}
.grade{width:112px;height:112px;border-radius:50%;display:flex;align-items:center;
justify-content:center;font-size:46px;font-weight:800;color:#fff;flex:none}
.g-A{background:linear-gradient(135deg,#43a047,#2e7d32)}
.g-B{background:linear-gradient(135deg,#7cb342,#558b2f)}
.g-C{background:linear-gradient(135deg,#fbc02d,#f57f17)}.g-D{background:linear-gradient(135deg,#fb8c00,#e65100)}
.g-F{background:linear-gradient(135deg,#e53935,#b71c1c)}.g-n{background:#90a4ae}
h1{margin:0 0 4px;font-size:22px}h2{margin:40px 0 12px;font-size:19px}
.meta{color:var(--muted);font-size:13.5px}.meta code{font-size:12.5px}
.chips{margin-top:8px}.chips .pill{margin-right:6px}
.verdict{margin-top:10px;font-weight:600}.verdict.fail{color:var(--bad)}.verdict.pass{color:var(--good)}
.practices{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:14px;margin-top:20px}
.practice{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px}
.practice .name{font-weight:600;text-transform:capitalize}
.practice .score{font-size:28px;font-weight:700}
.bar{height:8px;background:var(--line);border-radius:4px;overflow:hidden;margin:6px 0}
.bar span{display:block;height:100%;border-radius:4px}
.small{font-size:12.5px;color:var(--muted)}
.check{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--info);
border-radius:10px;padding:14px 18px;margin:12px 0}
.check.critical{border-left-color:var(--crit)}.check.high{border-left-color:var(--high)}
.check.medium{border-left-color:var(--medium)}.check.low{border-left-color:var(--low)}
.check h3{margin:0;font-size:16px}.check .id{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12.5px;color:var(--muted)}
.pill{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600;
color:#fff;margin-right:8px;vertical-align:2px;text-transform:uppercase;letter-spacing:.03em}
.pill.critical{background:var(--crit)}.pill.high{background:var(--high)}.pill.medium{background:var(--medium)}
.pill.low{background:var(--low)}.pill.info{background:var(--info)}
.pill.state{background:#eceff1;color:var(--muted)}
ul.findings{margin:10px 0 0;padding-left:18px}ul.findings li{margin:8px 0}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
code{background:#eef1f6;border-radius:4px;padding:1px 5px;font-size:12.5px}
pre{background:#1d2433;color:#e8ecf3;border-radius:8px;padding:10px 12px;overflow-x:auto;
font-size:12.5px;margin:6px 0;white-space:pre-wrap;word-break:break-all}
details{margin-top:8px}summary{cursor:pointer;color:var(--muted);font-size:13.5px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);
border-radius:10px;overflow:hidden;font-size:13.5px}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--line)}th{background:#eef1f6}
.pass{color:var(--good)}.skip{color:var(--muted)}.error{color:var(--medium)}
footer{margin-top:40px;color:var(--muted);font-size:12.5px;text-align:center}
"""


def _colour(score: int | None) -> str:
    if score is None:
        return "#b0bec5"
    return "var(--good)" if score >= 90 else "var(--ok)" if score >= 70 else "var(--bad)"


def _finding(report: AuditReport, finding: Finding) -> str:
    status = report.status(finding)
    tag = ""
    if status is not None and status.state == "baselined":
        tag = '<span class="pill state">baselined</span>'
    elif status is not None and status.state == "suppressed" and status.expires:
        tag = (
            f'<span class="pill state">suppressed until {status.expires.isoformat()}</span>'
            f'<span class="small">{escape(status.reason)}</span>'
        )
    parts = [f"<li>{tag}{escape(finding.message)}"]
    for evidence in finding.evidence:
        if evidence.location:
            parts.append(f'<div class="small">at <code>{escape(evidence.location)}</code></div>')
        if evidence.response:
            parts.append(f"<pre>{escape(evidence.response)}</pre>")
        if evidence.curl:
            parts.append(f'<div class="small">reproduce:</div><pre>{escape(evidence.curl)}</pre>')
    parts.append("</li>")
    return "".join(parts)


def _check(report: AuditReport, info: CheckInfo, findings: list[Finding]) -> str:
    failed = [f for f in findings if f.outcome is Outcome.FAIL]
    sev = info.severity.label
    refs = ", ".join(escape(r) for r in info.references)
    return (
        f'<section class="check {sev}"><h3><span class="pill {sev}">{sev}</span>'
        f'{escape(info.title)}</h3><div class="id">{escape(info.id)} · {info.kind.value}</div>'
        f'<ul class="findings">{"".join(_finding(report, f) for f in failed)}</ul>'
        f"<details><summary>Why it matters</summary><p>{escape(info.rationale)}</p>"
        f"<p><b>Passes when:</b> {escape(info.criterion)}</p>"
        f'<p class="small">References: {refs}</p></details></section>'
    )


def render(report: AuditReport) -> str:
    card = report.scorecard
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for finding in report.findings:
        by_check[finding.check.id].append(finding)
    letter = card.grade[:1] if card.grade != "n/a" else "n"
    score = "not assessed" if card.score is None else f"score {card.score} / 100"
    verdict = (
        f'<div class="verdict fail">{len(report.gating)} new finding(s) at or above'
        f" {report.fail_on.label}: the audit fails</div>"
        if report.gating
        else f'<div class="verdict pass">Nothing new at or above {report.fail_on.label}</div>'
    )
    facts = [f"profile <code>{escape(report.profile)}</code>"]
    if report.openapi:
        facts.append(f"OpenAPI <code>{escape(report.openapi)}</code>")
    if report.gateway_config:
        facts.append(f"gateway config <code>{escape(report.gateway_config)}</code>")
    if report.budget:
        facts.append(f"{report.requests} of {report.budget} requests")
    counts: dict[Severity, int] = defaultdict(int)
    for finding in report.failed:
        counts[finding.check.severity] += 1
    chips = "".join(
        f'<span class="pill {sev.label}">{counts[sev]} {sev.label}</span>'
        for sev in sorted(counts, reverse=True)
    )
    body = [
        f'<header><div class="grade g-{letter}">{escape(card.grade)}</div><div>'
        f'<h1>API security audit</h1><div class="meta"><code>{escape(report.target)}</code>'
        f' · {score}</div><div class="meta">{" · ".join(facts)}</div>'
        f'<div class="chips">{chips}</div>{verdict}</div></header>',
        '<div class="practices">',
    ]
    for p in card.practices:
        value = "n/a" if p.score is None else str(p.score)
        width = 0 if p.score is None else p.score
        body.append(
            f'<div class="practice"><div class="name">{p.practice.value.replace("-", " ")}</div>'
            f'<div class="score">{value}</div><div class="bar"><span style="width:{width}%;'
            f'background:{_colour(p.score)}"></span></div><div class="small">{p.passed} passed,'
            f" {p.failed} failed, {p.skipped} skipped</div></div>"
        )
    body.append("</div>")
    for practice in Practice:
        failing = [
            info
            for info in report.checks
            if info.practice is practice and outcome_of(by_check[info.id]) is Outcome.FAIL
        ]
        if failing:
            failing.sort(key=lambda i: -i.severity)
            body.append(f"<h2>{practice.value.replace('-', ' ').capitalize()}</h2>")
            body += [_check(report, info, by_check[info.id]) for info in failing]
    if report.triage.expired:
        body.append("<h2>Expired suppressions</h2><ul>")
        body += [
            f"<li><code>{escape(s.check)}</code> {escape(s.location or s.fingerprint or '')}:"
            f" expired {s.expires.isoformat()} ({escape(s.reason)})</li>"
            for s in report.triage.expired
        ]
        body.append("</ul>")
    rows = []
    for info in report.checks:
        outcome = outcome_of(by_check[info.id])
        if outcome is Outcome.FAIL:
            continue
        note = escape(by_check[info.id][0].message) if by_check[info.id] else ""
        rows.append(
            f"<tr><td><code>{escape(info.id)}</code></td><td>{escape(info.title)}</td>"
            f'<td class="{outcome.value}">{outcome.value}</td><td>{note}</td></tr>'
        )
    if rows:
        body.append(
            f"<h2>Passed and skipped checks ({len(rows)})</h2><details><summary>Show</summary>"
            "<table><tr><th>check</th><th>title</th><th>outcome</th><th>note</th></tr>"
            + "".join(rows)
            + "</table></details>"
        )
    body.append(
        f"<footer>bastion audit {escape(report.version)} · {report.started:%Y-%m-%d %H:%M} UTC"
        "</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>bastion audit: {escape(card.grade)} · {escape(report.target)}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )
