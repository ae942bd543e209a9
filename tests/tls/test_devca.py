"""The development certificate: made on first use in state_dir, private keys 0600, trusted
through its CA only, renewed before it expires, and name-constrained."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from bastion.tls.devca import ensure_dev_certificate, trust_instructions
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import client_context, start_tls_gateway, tls_config, tls_request

NAMES = ("localhost", "127.0.0.1", "::1")


def test_the_ca_and_certificate_are_made_once_with_private_keys_0600(tmp_path: Path) -> None:
    paths, created = ensure_dev_certificate(tmp_path, NAMES)
    assert created is True
    assert (paths.ca_key.stat().st_mode & 0o777) == 0o600
    assert (paths.key.stat().st_mode & 0o777) == 0o600
    assert (paths.directory.stat().st_mode & 0o777) == 0o700
    cert = paths.cert.read_bytes()
    again, created = ensure_dev_certificate(tmp_path, NAMES)
    assert created is False
    assert again.cert.read_bytes() == cert  # nothing is made again while current
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(paths.ca_cert), str(paths.cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_certificate_is_renewed_before_it_expires(tmp_path: Path) -> None:
    paths, _ = ensure_dev_certificate(tmp_path, NAMES)
    ca = paths.ca_cert.read_bytes()
    leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 90
    later = leaf.not_valid_after_utc - dt.timedelta(days=10)
    ensure_dev_certificate(tmp_path, NAMES, now=later)
    renewed = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert renewed.not_valid_after_utc > leaf.not_valid_after_utc
    assert paths.ca_cert.read_bytes() == ca  # same CA: clients keep trusting it


def test_new_names_need_a_new_ca_since_the_ca_is_name_constrained(tmp_path: Path) -> None:
    paths, _ = ensure_dev_certificate(tmp_path, NAMES)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    _, created = ensure_dev_certificate(tmp_path, (*NAMES, "dev.example.test"))
    assert created is True  # printed trust instructions again: the CA changed
    leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "dev.example.test" in names.get_values_for_type(x509.DNSName)


def test_trust_instructions_name_the_ca_file(tmp_path: Path) -> None:
    paths, _ = ensure_dev_certificate(tmp_path, NAMES)
    text = trust_instructions(paths)
    assert str(paths.ca_cert.resolve()) in text
    assert "curl --cacert" in text
    assert "dev-ca-key" in text
    assert "BEGIN" not in text


async def test_tls_without_certificates_serves_the_dev_certificate(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = tls_config(upstream.url, tmp_path / "state")
    gateway = await start_tls_gateway(config)
    try:
        assert gateway.tls.dev is not None
        ca = gateway.tls.dev.ca_cert
        assert ca.parent == tmp_path / "state" / "tls"
        for name in ("localhost", "127.0.0.1"):
            response, _ = await tls_request(gateway.port, client_context(ca), server_hostname=name)
            assert response.startswith(b"HTTP/1.1 200 ")
        with pytest.raises(ssl.SSLCertVerificationError):
            await tls_request(gateway.port, client_context(ca), server_hostname="example.com")
    finally:
        await gateway.close()


def test_a_certificate_longer_than_the_profile_allows_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import datetime as dt

    import trustme

    from bastion.config.tls import TLSConfig
    from bastion.tls.server import ServerTLS
    from tests.tls.helpers import issue

    long_lived = issue(
        trustme.CA(),
        tmp_path,
        "long",
        "localhost",
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=800),
    )
    ServerTLS(TLSConfig.model_validate({"certificates": [long_lived.files()]}), tmp_path).load()
    assert "valid for" in caplog.text
    assert "at most 366" in caplog.text
