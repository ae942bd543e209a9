"""``bastion tls pins`` (checked against openssl's own computation) and ``bastion tls inspect``
(against the engine's listener and a permissive server)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.tls.inspect import inspect
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import issue, start_tls_gateway, tls_config


def openssl_pin(cert: Path) -> str:
    """The pin as OpenSSL computes it (the recipe of RFC 7469 and Android's documentation)."""
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=pubkey,
        capture_output=True,
        check=True,
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True
    ).stdout
    return base64.b64encode(digest).decode()


def openssl_key_pin(key: Path) -> str:
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "der"],
        capture_output=True,
        check=True,
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True
    ).stdout
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize("key_type", [trustme.KeyType.ECDSA, trustme.KeyType.RSA])
def test_pins_match_openssl(tmp_path: Path, key_type: trustme.KeyType) -> None:
    cert = issue(trustme.CA(), tmp_path, "api", "api.example.test", key_type=key_type)
    result = CliRunner().invoke(
        cli,
        [
            "tls",
            "pins",
            "--cert",
            str(cert.cert),
            "--state-dir",
            str(tmp_path / "s"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    [leaf] = doc["certificates"][0]
    assert leaf["role"] == "leaf"
    assert leaf["pin"] == openssl_pin(cert.cert)
    backup_key = Path(doc["backup"]["key_file"])
    assert doc["backup"]["created"] is True
    assert (backup_key.stat().st_mode & 0o777) == 0o600
    assert doc["backup"]["pin"] == openssl_key_pin(backup_key)
    assert doc["backup"]["pin"] != leaf["pin"]
    assert doc["domains"] == ["api.example.test"]

    again = json.loads(
        CliRunner()
        .invoke(
            cli,
            [
                "tls",
                "pins",
                "--cert",
                str(cert.cert),
                "--state-dir",
                str(tmp_path / "s"),
                "--format",
                "json",
            ],
        )
        .output
    )
    assert again["backup"] == doc["backup"] | {"created": False}  # the same backup key, kept


def test_android_and_ios_snippets(tmp_path: Path) -> None:
    cert = issue(trustme.CA(), tmp_path, "api", "*.example.test")
    args = ["tls", "pins", "--cert", str(cert.cert), "--state-dir", str(tmp_path / "s")]
    android = CliRunner().invoke(
        cli, [*args, "--format", "android", "--domain", "api.example.test"]
    )
    assert android.exit_code == 0, android.output
    root = ET.fromstring(android.output)  # noqa: S314 - our own output
    domain = root.find("domain-config/domain")
    assert domain is not None
    assert domain.text == "api.example.test"
    assert domain.get("includeSubdomains") == "true"
    assert root.find("domain-config").get("cleartextTrafficPermitted") == "false"  # type: ignore[union-attr]
    pins = [p.text for p in root.findall("domain-config/pin-set/pin")]
    assert len(pins) == 2  # the live key and the backup key
    assert pins[0] == openssl_pin(cert.cert)
    assert root.find("domain-config/pin-set").get("expiration")  # type: ignore[union-attr]
    ios = CliRunner().invoke(cli, [*args, "--format", "ios"])
    assert ios.exit_code == 0
    assert '"example.test": [' in ios.output  # the wildcard's parent, with subdomains
    assert "kTSKEnforcePinning: true" in ios.output
    for pin in pins:
        assert f'"{pin}"' in ios.output
    text = CliRunner().invoke(cli, args)
    assert f"sha256/{pins[0]}" in text.output
    assert "network_security_config.xml" in text.output
    assert "TrustKit" in text.output


def test_pins_without_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["tls", "pins", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no certificate to pin" in result.output


async def test_inspect_reports_what_the_gateway_serves(upstream: Upstream, tmp_path: Path) -> None:
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    cert = issue(intermediate, tmp_path, "api", "localhost", key_type=trustme.KeyType.RSA)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = tls_config(upstream.url, tmp_path / "state", certificates=[cert.files()])
    gateway = await start_tls_gateway(config)
    try:
        report = await asyncio.to_thread(
            inspect, f"https://localhost:{gateway.port}", cafile=str(ca_file)
        )
    finally:
        await gateway.close()
    assert report.versions == {"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True}
    assert set(report.tls12_suites) == {
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    }
    assert report.tls13_suite is not None
    assert report.alpn == "http/1.1"
    assert report.verified is True
    assert report.hsts == "max-age=31536000; includeSubDomains"
    assert report.chain[0].pin == openssl_pin(cert.cert)
    assert len(report.chain) == 2  # the leaf and the intermediate, as served
    assert report.chain[1].subject == report.chain[0].issuer
    assert 0 < report.chain[0].days_left() <= 3650 * 100


async def test_inspect_shows_a_weak_server_as_weak(tmp_path: Path) -> None:
    cert = issue(trustme.CA(), tmp_path, "weak", "localhost", key_type=trustme.KeyType.RSA)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        report = await asyncio.to_thread(inspect, f"localhost:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()
    assert report.versions["TLSv1"] is True
    assert "AES128-SHA" in report.tls12_suites  # RSA key exchange, CBC
    assert report.verified is False  # trustme's CA is not in the system store
    assert report.verify_error
    assert report.hsts is None


def test_inspect_cli_on_a_closed_port_fails(tmp_path: Path) -> None:
    from tests.ports import free_port

    result = CliRunner().invoke(cli, ["tls", "inspect", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "cannot connect" in result.output
