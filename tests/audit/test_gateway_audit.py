"""A real bastion gateway (``bastion serve`` over TLS with the development CA) audited with its
own configuration: the weak document alone grades F; the strong document, reached through the
gateway over verified TLS and attested by the gateway's configuration, grades A+."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.config.models import BastionConfig
from tests.ports import free_port

from .helpers import DATA

SERVE = [sys.executable, "-c", "from bastion.cli.main import main; main()", "serve"]
# sections of bastion versions that have them: strict validation, detectors with an alert sink
SECTIONS = {
    "validation": "validation: {enabled: true, strict: true}\n",
    "monitoring": "monitoring:\n  enabled: true\n"
    "  alerts: {sinks: [{type: command, argv: [/bin/true]}]}\n",
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """``(url, config file, development CA)`` of a running gateway; stopped afterwards."""
    listen, admin, upstream = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"""
listen: 127.0.0.1:{listen}
admin: {{listen: 127.0.0.1:{admin}}}
state_dir: {state}
openapi: {DATA / "strong.yaml"}
auth: {{default: required}}
routes:
  - {{name: api, upstream: "http://127.0.0.1:{upstream}"}}
rate_limit:
  policies: [{{name: per-ip, rate: 100/minute}}]
tls: {{enabled: true}}
events: {{sink: stderr}}
timeouts: {{shutdown_grace: 1s}}
"""
        + "".join(text for name, text in SECTIONS.items() if name in BastionConfig.model_fields)
    )
    process = subprocess.Popen(
        [*SERVE, "--config", str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        assert process.stderr is not None
        seen = b""
        while b"TLS intermediate" not in seen:
            line = process.stderr.readline()
            assert line, f"the gateway stopped: {seen.decode(errors='replace')}"
            seen += line
        yield f"https://localhost:{listen}", config, state / "tls" / "dev-ca.pem"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.timeout(60)
def test_the_gateway_and_its_config_take_the_grade_to_the_top(
    gateway: tuple[str, Path, Path], tmp_path: Path
) -> None:
    url, config, ca = gateway
    weak = CliRunner().invoke(cli, ["audit", "--static", "--openapi", str(DATA / "weak.yaml")])
    assert weak.exit_code == 1
    assert "Grade  F" in weak.output

    out = tmp_path / "reports"
    result = CliRunner().invoke(
        cli,
        [
            "audit", url, "--ca", str(ca), "--openapi", str(DATA / "strong.yaml"),
            "--gateway-config", str(config), "--fail-on", "low",
            "--format", "terminal,json", "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bastion-audit.json").read_text())
    assert report["grade"] == "A+"
    assert report["requests"]["sent"] >= 1  # the preflight at least, over TLS verified by --ca
    attested = [f for f in report["findings"] if f["check"].startswith("attest.")]
    assert len(attested) >= 16
    skipped = {f["check"] for f in attested if f["outcome"] == "skip"}
    assert {f["outcome"] for f in attested} <= {"pass", "skip"}
    assert skipped <= {"attest.validation-strict", "attest.monitoring-alerts"}  # older versions
    assert {p["score"] for p in report["practices"]} == {100}


def test_without_the_ca_the_gateway_certificate_is_not_trusted(
    gateway: tuple[str, Path, Path],
) -> None:
    url, _, _ = gateway
    result = CliRunner().invoke(cli, ["audit", url, "--timeout", "5"])
    assert result.exit_code == 2
    assert "the connection failed" in result.output
    assert "CERTIFICATE_VERIFY_FAILED" in result.output
