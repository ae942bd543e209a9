"""Operator errors in ``monitoring`` that only show when the monitor is built (a GeoIP file
that is not a MaxMind DB, an SMTP password variable that is not set) stop ``bastion serve`` and
``bastion check-config`` with one line naming the field, exit 2, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.ports import free_port

GEOIP_FIELD = "monitoring.detectors.new_country.database"
SMTP_FIELD = "monitoring.alerts.sinks[0].password_env"


def _bad_geoip(tmp_path: Path) -> Path:
    database = tmp_path / "countries.mmdb"
    database.write_bytes(b"this is not a MaxMind DB file\n" * 10)
    path = tmp_path / "geoip.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"admin: {{listen: 127.0.0.1:{free_port()}}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "routes: [{name: api, upstream: 'http://127.0.0.1:9'}]\n"
        "monitoring:\n  enabled: true\n"
        f"  detectors: {{new_country: {{database: {database}}}}}\n"
    )
    return path


def _missing_smtp_password(tmp_path: Path) -> Path:
    path = tmp_path / "smtp.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"admin: {{listen: 127.0.0.1:{free_port()}}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "routes: [{name: api, upstream: 'http://127.0.0.1:9'}]\n"
        "monitoring:\n  enabled: true\n"
        "  detectors: {new_country: {enabled: false}}\n"
        "  alerts:\n    sinks:\n"
        "      - {type: email, host: 127.0.0.1, port: 2525, security: none, username: bastion,\n"
        "         password_env: BASTION_TEST_UNSET_SMTP_PASSWORD, sender: b@example.com,\n"
        "         to: [oncall@example.com]}\n"
    )
    return path


CASES = [(_bad_geoip, GEOIP_FIELD), (_missing_smtp_password, SMTP_FIELD)]


@pytest.mark.parametrize(("make", "field"), CASES)
def test_serve_reports_a_monitoring_error_as_one_line_and_exits_2(
    tmp_path: Path, make: object, field: str
) -> None:
    config = make(tmp_path)  # type: ignore[operator]
    env = {k: v for k, v in os.environ.items() if k != "BASTION_TEST_UNSET_SMTP_PASSWORD"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bastion.cli.main import cli; cli()",
            "serve",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"bastion: {field}")


@pytest.mark.parametrize(("make", "field"), CASES)
def test_check_config_reports_a_monitoring_error_naming_the_field(
    tmp_path: Path, make: object, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BASTION_TEST_UNSET_SMTP_PASSWORD", raising=False)
    config = make(tmp_path)  # type: ignore[operator]
    result = CliRunner().invoke(cli, ["check-config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"bastion: {field}")


def test_check_config_accepts_the_smtp_password_once_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_TEST_UNSET_SMTP_PASSWORD", "s3cret-smtp")
    result = CliRunner().invoke(cli, ["check-config", str(_missing_smtp_password(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "s3cret-smtp" not in result.output
