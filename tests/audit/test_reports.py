"""Every report format, produced from one real run and read back by a real parser.

The run combines static findings (weak.yaml), attestation findings (a weak bastion config) and a
live finding whose evidence carries a curl with the operator's credential, so each report is
checked for structure and for never containing that credential.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from bastion.audit.checks import default_registry
from bastion.audit.context import LiveContext
from bastion.audit.model import CheckInfo, Evidence, Finding, Kind, Practice, Severity, failed
from bastion.audit.report import AuditReport, build_report
from bastion.audit.reporters import html, json_report, junit, markdown, sarif, terminal
from bastion.audit.runner import AuditPlan, run
from bastion.audit.triage import Suppression, triage
from bastion.config.loader import build_config

from .conftest import Recorded
from .helpers import DATA, document

SECRET = "tok-9f8e7d6c5b4a"
SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
LIVE = CheckInfo(
    "live.example-query-credential",
    "A credential in the query string is refused",
    Practice.AUTHENTICATION,
    Severity.HIGH,
    Kind.LIVE,
    "The API refuses a working credential sent as ?access_token=",
    "Query strings end up in logs.",
    ("OWASP API2:2023",),
)


@pytest.fixture
async def report(recording_target: Recorded, tmp_path: Path) -> AuditReport:
    async def query_credential(context: LiveContext) -> list[Finding]:
        response = await context.request("GET", "/orders", params={"access_token": SECRET})
        return [
            failed(
                LIVE,
                "GET /orders answered 200 with the credential in the query string",
                Evidence(
                    "accepted",
                    "GET /orders",
                    curl=context.curl("GET", "/orders", query=f"access_token={SECRET}"),
                    response=f"HTTP/1.1 {response.status_code}",
                ),
            )
        ]

    registry = default_registry()
    registry.add_live(LIVE, query_credential)
    config_path = tmp_path / "bastion.yaml"
    config_path.write_text("events: {sink: none}\nauth: {default: public}\n")
    plan = AuditPlan(
        url=recording_target.url,
        document=document("weak.yaml"),
        config=build_config({"events": {"sink": "none"}, "auth": {"default": "public"}}),
        auth=[("Authorization", f"Bearer {SECRET}")],
        budget=50,
    )
    result = await run(registry, plan)
    accepted = Suppression(
        check="static.https-servers", reason="staging host, HTTPS at the edge",
        expires=dt.date(2999, 1, 1),
    )  # fmt: skip
    expired = Suppression(
        check="static.weak-auth-schemes", reason="legacy clients", expires=dt.date(2001, 1, 1)
    )
    baseline = frozenset(
        f.fingerprint for f in result.findings if f.check.id == "static.credentials-in-url"
    )
    return build_report(
        recording_target.url,
        result.findings,
        triaged=triage(result.findings, baseline, [accepted, expired]),
        openapi=str(DATA / "weak.yaml"),
        gateway_config=str(config_path),
        requests=result.requests,
        budget=50,
    )


def all_outputs(report: AuditReport) -> dict[str, str]:
    return {
        "terminal": terminal.render(report, colour=True),
        "json": json_report.render(report),
        "sarif": sarif.render(report),
        "junit": junit.render(report),
        "html": html.render(report),
        "markdown": markdown.render(report),
    }


def test_no_report_contains_the_credential(report: AuditReport) -> None:
    for name, text in all_outputs(report).items():
        assert SECRET not in text, name
    assert "****" in json_report.render(report)


def test_sarif_is_valid_against_the_official_schema(report: AuditReport) -> None:
    log = json.loads(sarif.render(report))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    run_ = log["runs"][0]
    rules = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    assert "static.security-on-writes" in rules
    assert LIVE.id in rules
    results = run_["results"]
    assert len(results) == len(report.failed)
    for result in results:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        assert result["partialFingerprints"]["bastionFindingHash/v1"]
    states = {r["ruleId"]: r for r in results}
    assert states["static.https-servers"]["suppressions"][0]["justification"].startswith("staging")
    assert states["static.credentials-in-url"]["baselineState"] == "unchanged"
    assert "suppressions" not in states["static.weak-auth-schemes"]  # expired: applies no more


def test_sarif_points_static_and_attestation_findings_at_their_lines(report: AuditReport) -> None:
    results = json.loads(sarif.render(report))["runs"][0]["results"]
    weak = (DATA / "weak.yaml").read_text().splitlines()
    for result in results:
        place = result["locations"][0]["physicalLocation"]
        uri, line = place["artifactLocation"]["uri"], place["region"]["startLine"]
        if result["ruleId"] == "static.weak-auth-schemes" and "basic" in result["message"]["text"]:
            assert uri.endswith("weak.yaml")
            assert "basic:" in weak[line - 1]
        if result["ruleId"] == "attest.events-enabled":
            assert uri.endswith("bastion.yaml")
            assert line == 1
        if result["ruleId"] == LIVE.id:  # "GET /orders": the operation's line
            assert weak[line - 1].strip() == "get:"
            assert "/orders:" in weak[line - 2]


def test_sarif_of_a_clean_static_run_is_valid_and_empty() -> None:
    findings = [
        f for e in default_registry() if e.static for f in e.static(document("strong.yaml"))
    ]
    log = json.loads(sarif.render(build_report("strong.yaml", findings)))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []


def test_junit_has_a_suite_per_practice_and_a_case_per_check(report: AuditReport) -> None:
    root = ET.fromstring(junit.render(report))  # noqa: S314 - our own output
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {p.value for p in Practice}
    cases = {c.get("name", "").split(":")[0]: c for c in root.iter("testcase")}
    assert cases["static.security-on-writes"].find("failure") is not None
    assert cases[LIVE.id].find("failure") is not None
    # baselined or suppressed: not a failure, but listed in the case's output
    for accepted in ("static.https-servers", "static.credentials-in-url"):
        assert cases[accepted].find("failure") is None
        assert cases[accepted].findtext("system-out")
    assert cases["static.security-on-reads"].find("failure") is None
    total = int(root.get("tests", "0"))
    assert total == len(cases) == len(report.checks)
    assert int(root.get("failures", "0")) == sum(
        1 for c in cases.values() if c.find("failure") is not None
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in ("meta", "br", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag, f"</{tag}> closes something else"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_well_formed_file_with_scores_and_evidence(report: AuditReport) -> None:
    page = html.render(report)
    parser = _Collector()
    parser.feed(page)
    assert parser.stack == []
    assert "script" not in parser.tags
    assert "link" not in parser.tags
    text = " ".join(parser.text)
    assert f"{report.scorecard.grade}" in text
    for practice in ("authentication", "rate limiting", "validation", "encryption", "logging"):
        assert practice in text
    assert "curl -i -X GET" in text
    assert "access_token=****" in text
    assert "/paths/~1orders/post/security" in text
    assert "suppressed until 2999-01-01" in text
    assert "baselined" in text
    assert "Expired suppressions" in text


def test_html_escapes_what_the_target_controls(report: AuditReport) -> None:
    evil = failed(LIVE, "<script>alert(1)</script>", Evidence("x", "GET /<b>"))
    page = html.render(build_report("http://t/<i>", [*report.findings, evil]))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_markdown_lists_new_findings_and_folds_accepted_ones(report: AuditReport) -> None:
    text = markdown.render(report)
    assert text.startswith(f"## :x: bastion audit: grade **{report.scorecard.grade}**")
    assert "| authentication |" in text
    assert "`static.security-on-writes`" in text
    assert "<summary>1 baselined</summary>" not in text or "static.credentials-in-url" in text
    assert "suppressed</summary>" in text
    assert "### Expired suppressions" in text
    assert "```sh" in text
    assert "access_token=****" in text
    rows = [line for line in text.splitlines() if line.startswith("| high |")]
    assert rows
    assert all(line.count("|") == 5 for line in rows)


def test_json_report_round_trips_and_carries_status(report: AuditReport) -> None:
    data = json.loads(json_report.render(report))
    assert data["grade"] == report.scorecard.grade
    assert data["summary"]["exit_code"] == report.exit_code == 1
    statuses = {f["check"]: f["status"] for f in data["findings"] if f["outcome"] == "fail"}
    assert statuses["static.https-servers"] == "suppressed"
    assert statuses["static.credentials-in-url"] == "baselined"
    assert statuses["static.security-on-writes"] == "new"
    assert data["expired_suppressions"][0]["check"] == "static.weak-auth-schemes"
    assert {c["id"] for c in data["checks"]} == {f["check"] for f in data["findings"]}


def test_terminal_report_shows_grade_bars_findings_and_verdict(report: AuditReport) -> None:
    text = terminal.render(report)
    assert f"Grade  {report.scorecard.grade} " in text
    assert "authentication" in text
    assert "█" in text
    assert "CRITICAL static.security-on-writes" in text
    assert "[baselined]" in text
    assert "[suppressed until 2999-01-01" in text
    assert "curl -i -X GET" in text
    assert text.rstrip().splitlines()[-1].startswith("FAIL:")
    assert "\x1b[" not in text
    assert "\x1b[" in terminal.render(report, colour=True)


def test_markdown_stays_small_enough_for_a_pull_request_comment() -> None:
    many = [
        failed(LIVE, f"GET /items/{n} answered 200", Evidence("x", f"GET /items/{n}", curl="curl"))
        for n in range(1000)
    ]
    text = markdown.render(build_report("http://t", many))
    assert len(text) < 65_536
    assert "… and 900 more" in text
