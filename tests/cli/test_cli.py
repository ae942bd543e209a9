"""The CLI's contract: exit 0 ok, 2 for usage or config errors with a readable reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bastion.cli.main import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["version"])
    assert result.exit_code == 0
    assert result.output.startswith("bastion ")


def test_check_config_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("routes:\n  - name: api\n    upstream: http://127.0.0.1:9000\n")
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert "api -> http://127.0.0.1:9000" in result.output


def test_check_config_invalid_exits_2_naming_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes:\n  - name: api\n    upstream: nope\nworkers: 0\n")
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "routes[0].upstream: got 'nope'; expected an http:// or https:// URL" in result.output
    assert "workers: got 0;" in result.output


def test_check_config_checks_the_openapi_document(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("swagger: '2.0'\npaths: {}\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"openapi: {spec}\n")
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "expected 3.0.x or 3.1.x" in result.output


def test_check_config_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check-config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_serve_without_any_route_exits_2() -> None:
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "routes: none configured; expected --upstream URL" in result.output


def test_serve_with_a_bad_upstream_exits_2() -> None:
    result = CliRunner().invoke(cli, ["serve", "--upstream", "localhost:80"])
    assert result.exit_code == 2
    assert "routes[0].upstream: got 'localhost:80'" in result.output


def test_unknown_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--no-such-flag"])
    assert result.exit_code == 2


def test_console_script_runs() -> None:
    bin_dir = Path(sys.executable).parent
    out = subprocess.run(
        [str(bin_dir / "bastion"), "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "check-config", "demo", "version"):
        assert command in out.stdout
