"""Advisory: protocol downgrade and weak cryptography. A client (or a machine in the middle
forcing one) must not get TLS 1.0/1.1, a suite without forward secrecy or without AEAD (CBC:
Lucky13, BEAST; RSA key exchange: ROBOT, no forward secrecy), a key exchange group outside the
profile, or hold a connection open without finishing its handshake.

Each refusal is first checked against a permissive control server with the same certificate,
so that a refusal proves bastion refused and not that the test client could not offer it
(OpenSSL's security level is lowered on the client side for that).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from tests.engine.upstream_app import Upstream
from tests.tls.fixtures import ca, gateway, rsa_cert
from tests.tls.helpers import (
    REFUSED,
    Issued,
    TLSGateway,
    client_context,
    control_server,
    handshake,
    issue,
    start_tls_gateway,
    tls_config,
)

V = ssl.TLSVersion


__all__ = ["ca", "gateway", "rsa_cert"]  # fixtures, from tests.tls.fixtures


@pytest.mark.parametrize("version", [V.TLSv1, V.TLSv1_1])
async def test_tls_1_0_and_1_1_are_refused(
    gateway: TLSGateway, rsa_cert: Issued, ca: trustme.CA, version: ssl.TLSVersion
) -> None:
    context = client_context(ca, minimum=version, maximum=version)
    control, port = await control_server(rsa_cert)
    try:
        accepted = await handshake(port, context)  # the client does offer this version
        assert accepted.version() in ("TLSv1", "TLSv1.1")
    finally:
        control.close()
    with pytest.raises(REFUSED):
        await handshake(gateway.port, context)


@pytest.mark.parametrize(
    "suite",
    [
        "AES128-SHA",  # RSA key exchange, CBC
        "AES256-GCM-SHA384",  # RSA key exchange (no forward secrecy), AEAD
        "ECDHE-RSA-AES128-SHA",  # ECDHE, but CBC with SHA-1
        "ECDHE-RSA-AES256-SHA384",  # ECDHE, CBC
        "ECDHE-RSA-AES128-SHA256",  # ECDHE, CBC with SHA-256
        "AES128-SHA256",  # RSA key exchange, CBC
    ],
)
async def test_weak_tls_1_2_suites_are_refused(
    gateway: TLSGateway, rsa_cert: Issued, ca: trustme.CA, suite: str
) -> None:
    context = client_context(ca, minimum=V.TLSv1_2, maximum=V.TLSv1_2, ciphers=suite)
    control, port = await control_server(rsa_cert)
    try:
        accepted = await handshake(port, context)
        assert accepted.cipher()[0] == suite
    finally:
        control.close()
    with pytest.raises(REFUSED):
        await handshake(gateway.port, context)


async def test_key_exchange_groups_outside_the_profile_are_refused(
    gateway: TLSGateway, ca: trustme.CA
) -> None:
    for group, accepted in (
        ("X25519", True),
        ("prime256v1", True),
        ("secp384r1", True),
        ("secp521r1", False),
        ("X448", False),
    ):
        context = client_context(ca)
        context.set_ecdh_curve(group)  # the client offers this group only
        if accepted:
            await handshake(gateway.port, context)
        else:
            with pytest.raises(REFUSED):
                await handshake(gateway.port, context)


async def test_a_handshake_that_never_comes_is_cut_off(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = issue(ca, tmp_path, "localhost")
    config = tls_config(upstream.url, tmp_path / "state", certificates=[cert.files()])
    gateway = await start_tls_gateway(config)  # header_read is 0.5 s in the test timeouts
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        closed = await asyncio.wait_for(reader.read(), 5)
        assert closed == b""
        writer.close()
    finally:
        await gateway.close()
