"""The README's first command: ``bastion demo`` starts and its tour behaves as it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bastion.demo.tour import steps
from tests.ports import free_port


def test_demo_check_passes_every_step(tmp_path: Path) -> None:
    """The default demo: HTTPS with the development CA, plain HTTP beside it."""
    bastion = Path(sys.executable).parent / "bastion"
    gateway, plain, api, admin = free_port(), free_port(), free_port(), free_port()
    result = subprocess.run(
        [
            str(bastion),
            "demo",
            "--check",
            "--listen",
            f"127.0.0.1:{gateway}",
            "--http-listen",
            f"127.0.0.1:{plain}",
            "--api-listen",
            f"127.0.0.1:{api}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(steps("https://127.0.0.1:1", plain="http://127.0.0.1:2"))
    assert count == len(steps("http://127.0.0.1:1")) + 2  # the plain-HTTP steps
    assert f"{count} of {count} tour steps behaved as expected" in result.stdout
    assert "checking the gateway at https://" in result.stdout
    assert (tmp_path / "state" / "tls" / "dev-ca.pem").exists()
    assert "FAILED" not in result.stdout
    assert (tmp_path / "state").is_dir()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    # the key made at start is shown by id (its secret too, outside --check) and stored there
    assert "API key" in result.stdout
    assert "for consumer demo-client" in result.stdout
    assert (tmp_path / "state" / "keys.db").exists()
    assert list((tmp_path / "state" / "signing-keys").glob("*.json"))


def test_demo_without_tls_serves_plain_http(tmp_path: Path) -> None:
    bastion = Path(sys.executable).parent / "bastion"
    gateway, api, admin = free_port(), free_port(), free_port()
    result = subprocess.run(
        [
            str(bastion),
            "demo",
            "--check",
            "--no-tls",
            "--http-listen",
            f"127.0.0.1:{gateway}",
            "--api-listen",
            f"127.0.0.1:{api}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(steps("http://127.0.0.1:1"))
    assert f"{count} of {count} tour steps behaved as expected" in result.stdout
    assert f"checking the gateway at http://127.0.0.1:{gateway}" in result.stdout
    assert not list((tmp_path / "state").rglob("dev-ca.pem"))


def test_demo_refuses_a_port_shared_with_the_gateway() -> None:
    bastion = Path(sys.executable).parent / "bastion"
    result = subprocess.run(
        [str(bastion), "demo", "--listen", "127.0.0.1:18080", "--api-listen", "127.0.0.1:18080"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--api-listen: expected a port other than" in result.stderr
