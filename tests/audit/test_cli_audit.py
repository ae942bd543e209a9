"""``bastion audit`` as CI runs it: exit codes, report files, baseline and suppressions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from bastion.audit.checks import default_registry
from bastion.cli.main import cli
from tests.ports import free_port

from .conftest import Recorded
from .helpers import DATA

WEAK = str(DATA / "weak.yaml")
STRONG = str(DATA / "strong.yaml")


def audit(*args: str) -> Result:
    return CliRunner().invoke(cli, ["audit", *args])


def medium_only(tmp_path: Path) -> str:
    """strong.yaml with one medium-severity weakness: an array without maxItems."""
    doc: dict[str, Any] = yaml.safe_load(Path(STRONG).read_text())
    del doc["components"]["schemas"]["Order"]["properties"]["tags"]["maxItems"]
    path = tmp_path / "medium.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_strong_document_exits_0() -> None:
    result = audit("--static", "--openapi", STRONG, "--fail-on", "low")
    assert result.exit_code == 0, result.output
    assert "Grade  A+" in result.output
    assert "PASS: nothing new at or above low" in result.output


def test_a_weak_document_exits_1() -> None:
    result = audit("--static", "--openapi", WEAK)
    assert result.exit_code == 1
    assert "FAIL:" in result.output
    assert "static.security-on-writes" in result.output


@pytest.mark.parametrize(("fail_on", "code"), [("high", 0), ("medium", 1), ("critical", 0)])
def test_fail_on_sets_the_threshold(tmp_path: Path, fail_on: str, code: int) -> None:
    result = audit("--static", "--openapi", medium_only(tmp_path), "--fail-on", fail_on)
    assert result.exit_code == code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "URL is required"),
        (("--static",), "give --openapi"),
        (("ftp://example.com",), "expected an http:// or https:// URL"),
        (("--static", "--openapi", WEAK, "--format", "pdf"), "expected a comma-separated list"),
        (("--static", "--openapi", WEAK, "--fail-on", "severe"), "severity 'severe' is unknown"),
        (("--static", "--openapi", "/nonexistent/openapi.yaml"), "no such file"),
        (("--static", "--openapi", str(DATA / "sarif-schema-2.1.0.LICENSE.md")), "expected"),
        (("--static", "--openapi", WEAK, "--budget", "0"), "--budget"),
        (("--static", "--openapi", WEAK, "--gateway-config", "/nonexistent.yaml"), "no such file"),
        (("http://127.0.0.1:1", "--plain-http-url", "https://x"), "expected an http:// URL"),
        (("http://127.0.0.1:1", "--other-auth", "no-colon-s3cr3t"), "--other-auth"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = audit(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_malformed_auth_value_exits_2_without_echoing_it() -> None:
    result = audit("http://127.0.0.1:1", "--auth", "Bearer-only-hunter2-secret")
    assert result.exit_code == 2
    assert "hunter2" not in result.output
    assert "'Header-Name: value'" in result.output


def test_a_target_that_does_not_answer_exits_2() -> None:
    result = audit(f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert result.exit_code == 2
    assert "the connection failed" in result.output


def test_a_live_run_starts_with_an_anonymous_preflight_and_counts_requests(
    recording_target: Recorded, tmp_path: Path
) -> None:
    result = audit(
        recording_target.url, "--openapi", STRONG, "--auth", "X-API-Key: k-123",
        "--format", "terminal,json", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output  # live families judge the target
    report = json.loads((tmp_path / "bastion-audit.json").read_text())
    _, method, path, headers = recording_target.arrivals[0]
    assert (method, path) == ("GET", "/")
    assert "X-API-Key" not in headers  # the preflight is anonymous
    sent = report["requests"]["sent"]
    assert sent >= len(recording_target.arrivals) >= 1
    assert f"{sent} of 500 requests" in result.output
    assert "k-123" not in result.output


def test_every_format_is_written_and_readable(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = audit(
        "--static", "--openapi", WEAK, "--format", "terminal,json,sarif,junit,html,markdown",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "bastion-audit.html",
        "bastion-audit.json",
        "bastion-audit.junit.xml",
        "bastion-audit.md",
        "bastion-audit.sarif",
    ]
    assert json.loads((out / "bastion-audit.json").read_text())["grade"] == "F"
    assert json.loads((out / "bastion-audit.sarif").read_text())["version"] == "2.1.0"
    assert "Grade" in result.output  # the terminal report still goes to standard output


def test_the_same_target_gives_the_same_findings_in_the_same_order(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        audit("--static", "--openapi", WEAK, "--format", "json", "--out", str(tmp_path / name))
        data = json.loads((tmp_path / name / "bastion-audit.json").read_text())
        runs.append((data["findings"], data["practices"], data["grade"]))
    assert runs[0] == runs[1]


def test_gateway_config_adds_attestation(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("events: {sink: none}\n")
    result = audit("--static", "--openapi", STRONG, "--gateway-config", str(config))
    assert result.exit_code == 1  # attest.tls-served is critical
    assert "attest.events-enabled" in result.output
    assert "attest.tls-served" in result.output


def test_an_invalid_gateway_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("events: {sink: carrier-pigeon}\n")
    result = audit("--static", "--openapi", STRONG, "--gateway-config", str(config))
    assert result.exit_code == 2
    assert "events.sink" in result.output


def test_a_baseline_makes_ci_fail_only_on_new_findings(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    first = audit("--static", "--openapi", WEAK, "--write-baseline", str(baseline))
    assert first.exit_code == 1  # writing a baseline does not change this run's verdict
    stored = json.loads(baseline.read_text())
    assert stored["version"] == 1
    assert {f["check"] for f in stored["findings"]} >= {"static.security-on-writes"}

    again = audit("--static", "--openapi", WEAK, "--baseline", str(baseline))
    assert again.exit_code == 0, again.output
    assert "baselined" in again.output

    doc: dict[str, Any] = yaml.safe_load(Path(WEAK).read_text())
    doc["paths"]["/refunds"] = {"post": {"responses": {"201": {"description": "ok"}}}}
    changed = tmp_path / "weak-plus.yaml"
    changed.write_text(yaml.safe_dump(doc))
    worse = audit("--static", "--openapi", str(changed), "--baseline", str(baseline))
    assert worse.exit_code == 1
    assert "FAIL: 1 new finding(s)" in worse.output
    assert "POST /refunds declares no security requirement" in worse.output


def test_a_baseline_that_is_not_one_exits_2(tmp_path: Path) -> None:
    bogus = tmp_path / "baseline.json"
    bogus.write_text('{"fingerprints": []}')
    result = audit("--static", "--openapi", WEAK, "--baseline", str(bogus))
    assert result.exit_code == 2
    assert "--write-baseline" in result.output


def suppressions_file(tmp_path: Path, expires: dt.date, **extra: str) -> str:
    rules = [
        {"check": cid, "reason": "accepted for the pilot", "expires": expires.isoformat(), **extra}
        for cid in (
            "static.security-on-writes",
            "static.credentials-in-url",
            "static.weak-auth-schemes",
            "static.https-servers",
            "static.https-security-urls",
        )
    ]
    path = tmp_path / "suppressions.yaml"
    path.write_text(yaml.safe_dump({"suppressions": rules}))
    return str(path)


def test_suppressions_with_a_future_expiry_apply(tmp_path: Path) -> None:
    path = suppressions_file(tmp_path, dt.date.today() + dt.timedelta(days=30))
    result = audit("--static", "--openapi", WEAK, "--suppressions", path)
    assert result.exit_code == 0, result.output
    assert "[suppressed until" in result.output
    assert "accepted for the pilot" in result.output


def test_expired_suppressions_stop_applying_and_are_reported(tmp_path: Path) -> None:
    path = suppressions_file(tmp_path, dt.date.today() - dt.timedelta(days=1))
    result = audit("--static", "--openapi", WEAK, "--suppressions", path)
    assert result.exit_code == 1
    assert "Expired suppressions (no longer applied)" in result.output
    assert "static.security-on-writes at every location: expired" in result.output


def test_a_suppression_narrowed_to_a_location_leaves_the_others(tmp_path: Path) -> None:
    path = suppressions_file(
        tmp_path, dt.date.today() + dt.timedelta(days=1), location="/paths/~1orders/post/security"
    )
    result = audit("--static", "--openapi", WEAK, "--suppressions", path)
    assert result.exit_code == 1
    assert "DELETE /orders/{id} requires undefined security schemes" in result.output


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"check": "static.https-servers", "expires": "2030-01-01"}, "reason"),
        ({"check": "static.https-servers", "reason": "because"}, "expires"),
        ({"check": "static.https-servers", "reason": "because", "expires": "soon"}, "expires"),
    ],
)
def test_a_suppression_without_reason_or_expiry_exits_2(
    tmp_path: Path, entry: dict[str, str], message: str
) -> None:
    path = tmp_path / "suppressions.yaml"
    path.write_text(yaml.safe_dump({"suppressions": [entry]}))
    result = audit("--static", "--openapi", WEAK, "--suppressions", str(path))
    assert result.exit_code == 2
    assert f"suppressions[0].{message}" in result.output


def test_help_lists_every_option() -> None:
    result = audit("--help")
    assert result.exit_code == 0
    for option in (
        "--openapi", "--auth", "--profile", "--aggressive", "--budget", "--pacing", "--format",
        "--out", "--fail-on", "--baseline", "--write-baseline", "--suppressions",
        "--gateway-config", "--static",
    ):  # fmt: skip
        assert option in result.output


def test_the_document_can_be_fetched_from_a_url_without_the_credential(
    recording_target: Recorded,
) -> None:
    result = audit(
        "--static", "--openapi", f"{recording_target.url}/openapi.yaml",
        "--auth", "Authorization: Bearer t-1", "--fail-on", "low",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Grade  A+" in result.output
    ((_, method, path, headers),) = recording_target.arrivals
    assert (method, path) == ("GET", "/openapi.yaml")
    assert "Authorization" not in headers


def test_a_document_url_that_is_not_a_document_exits_2(recording_target: Recorded) -> None:
    result = audit("--static", "--openapi", f"{recording_target.url}/other.json")
    assert result.exit_code == 2
    assert f"{recording_target.url}/other.json" in result.output
    assert "expected 3.0.x or 3.1.x" in result.output


def test_progress_goes_to_standard_error_when_asked() -> None:
    result = CliRunner().invoke(cli, ["audit", "--static", "--openapi", STRONG, "--progress"])
    assert result.exit_code == 0
    assert "static.security-on-writes ok" in result.stderr
    total = sum(1 for entry in default_registry() if entry.static is not None)
    assert f"[{total:>3}/{total}]" in result.stderr
    assert "[  1/" not in result.stdout


def test_without_the_terminal_format_one_line_still_tells_the_outcome(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["audit", "--static", "--openapi", WEAK, "--format", "json", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "bastion audit: grade F (" in result.stderr
    assert "new finding(s) at or above high" in result.stderr


def test_an_out_directory_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = audit("--static", "--openapi", WEAK, "--format", "json", "--out", str(blocker / "x"))
    assert result.exit_code == 2
    assert "cannot write bastion-audit.json" in result.output


def test_list_checks_prints_every_check_once() -> None:
    result = audit("--list-checks")
    assert result.exit_code == 0
    ids = [line.split()[0] for line in result.output.splitlines()]
    assert ids == [info.id for info in default_registry().infos()]
    assert "static.security-on-writes" in ids
    assert "critical" in result.output.splitlines()[ids.index("static.security-on-writes")]
