"""Real handshakes against the engine's TLS listener: versions, suites, SNI, ALPN, profiles.

Refusals of old versions, weak suites and groups are advisories
(``tests/advisories/test_tls_downgrade.py``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.engine.upstream_app import Upstream
from tests.tls.fixtures import ca, gateway, rsa_cert
from tests.tls.helpers import (
    REFUSED,
    TLSGateway,
    client_context,
    fields_of,
    handshake,
    issue,
    start_tls_gateway,
    tls_config,
    tls_request,
)

V = ssl.TLSVersion


__all__ = ["ca", "gateway", "rsa_cert"]  # fixtures, from tests.tls.fixtures


@pytest.mark.parametrize("version", [V.TLSv1_2, V.TLSv1_3])
async def test_tls_1_2_and_1_3_are_served(
    gateway: TLSGateway, ca: trustme.CA, version: ssl.TLSVersion
) -> None:
    context = client_context(ca, minimum=version, maximum=version)
    response, ssl_object = await tls_request(gateway.port, context)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert ssl_object.version() == {V.TLSv1_2: "TLSv1.2", V.TLSv1_3: "TLSv1.3"}[version]
    assert fields_of(response)["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_strong_tls_1_2_suites_are_accepted(gateway: TLSGateway, ca: trustme.CA) -> None:
    for suite in (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ):
        context = client_context(ca, minimum=V.TLSv1_2, maximum=V.TLSv1_2, ciphers=suite)
        assert (await handshake(gateway.port, context)).cipher()[0] == suite


async def test_modern_profile_serves_tls_1_3_only(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = issue(ca, tmp_path, "localhost")
    config = tls_config(
        upstream.url, tmp_path / "state", certificates=[cert.files()], profile="modern"
    )
    gateway = await start_tls_gateway(config)
    try:
        with pytest.raises(REFUSED):
            await handshake(gateway.port, client_context(ca, maximum=V.TLSv1_2))
        response, ssl_object = await tls_request(gateway.port, client_context(ca))
        assert ssl_object.version() == "TLSv1.3"
        assert response.startswith(b"HTTP/1.1 200 ")
    finally:
        await gateway.close()


async def test_certificates_are_chosen_by_sni(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    default = issue(ca, tmp_path, "default", "default.test")
    api = issue(ca, tmp_path, "api", "api.example.test")
    wildcard = issue(ca, tmp_path, "wild", "*.tenants.test")
    config = tls_config(
        upstream.url,
        tmp_path / "state",
        certificates=[default.files(), api.files(), wildcard.files()],
    )
    gateway = await start_tls_gateway(config)
    context = client_context(ca)
    try:
        for name in ("api.example.test", "acme.tenants.test", "default.test"):
            ssl_object = await handshake(gateway.port, context, server_hostname=name)
            assert ssl_object.getpeercert() is not None  # verified for exactly this name
        # A name no certificate serves gets the default one (and fails the client's check).
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(gateway.port, context, server_hostname="other.test")
        unverified = client_context(None)
        ssl_object = await handshake(gateway.port, unverified, server_hostname="other.test")
        der = ssl_object.getpeercert(True)
        assert der is not None
        assert der == ssl.PEM_cert_to_DER_cert(default.cert.read_text())
    finally:
        await gateway.close()


async def test_alpn_selects_http_1_1(gateway: TLSGateway, ca: trustme.CA) -> None:
    offered = client_context(ca, alpn=["h2", "http/1.1"])
    assert (await handshake(gateway.port, offered)).selected_alpn_protocol() == "http/1.1"
    h2_only = client_context(ca, alpn=["h2"])
    response, ssl_object = await tls_request(gateway.port, h2_only)
    assert ssl_object.selected_alpn_protocol() is None  # no h2: the client falls back
    assert response.startswith(b"HTTP/1.1 200 ")


async def test_compression_and_renegotiation_are_off(gateway: TLSGateway, ca: trustme.CA) -> None:
    ssl_object = await handshake(
        gateway.port, client_context(ca, minimum=V.TLSv1_2, maximum=V.TLSv1_2)
    )
    assert ssl_object.compression() is None
    assert gateway.tls.context is not None
    assert gateway.tls.context.options & ssl.OP_NO_RENEGOTIATION
    assert gateway.tls.context.options & ssl.OP_NO_COMPRESSION
