"""Advisory: an impostor upstream (DNS spoofing, a machine in the middle, a misrouted address).
bastion verifies an ``https`` upstream's certificate (chain and host name) and, when configured,
its SPKI pin before sending a single byte of the request: the impostor never sees the request,
its credentials or its body, and the client gets 502 ``upstream.tls_failed``."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from bastion.config.models import BastionConfig
from bastion.tls.certs import leaf_facts
from tests.engine.helpers import FAST_TIMEOUTS, raw, start_gateway, status_of
from tests.tls.helpers import issue

SECRET_REQUEST = (
    b"POST /pay HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer secret-token\r\n"
    b'content-length: 17\r\nconnection: close\r\n\r\n{"card": "4111"}\n'
)


async def impostor(cert_file: Path, key_file: Path) -> tuple[asyncio.Server, list[bytes]]:
    """A TLS server that records every byte it receives after its handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    received: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                received.append(data)
        except (ConnectionError, ssl.SSLError):
            pass
        writer.close()

    return await asyncio.start_server(record, "127.0.0.1", 0, ssl=context), received


def config_for(port: int, **upstream: object) -> BastionConfig:
    return BastionConfig.model_validate(
        {
            "routes": [{"name": "pay", "upstream": f"https://localhost:{port}"}],
            "timeouts": FAST_TIMEOUTS,
            "admin": {"enabled": False},
            "events": {"sink": "none"},
            "tls": {"upstream": upstream},
        }
    )


@pytest.mark.parametrize("defence", ["chain", "host_name", "pin"])
async def test_an_impostor_upstream_never_sees_the_request(tmp_path: Path, defence: str) -> None:
    trusted = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    trusted.cert_pem.write_to_path(str(ca_file))
    real = issue(trusted, tmp_path / "real", "real", "localhost")
    if defence == "chain":  # a self-made CA: the chain does not verify
        fake = issue(trustme.CA(), tmp_path / "fake", "fake", "localhost")
        settings: dict[str, object] = {"ca": str(ca_file)}
    elif defence == "host_name":  # a genuine certificate, for another name
        fake = issue(trusted, tmp_path / "fake", "fake", "elsewhere.test")
        settings = {"ca": str(ca_file)}
    else:  # a certificate the CA really issued for this name (a compromised CA): the pin
        fake = issue(trusted, tmp_path / "fake", "fake", "localhost")
        settings = {"ca": str(ca_file), "pins": [leaf_facts(real.cert).pin]}
    server, received = await impostor(fake.cert, fake.key)
    gateway = await start_gateway(config_for(server.sockets[0].getsockname()[1], **settings))
    try:
        answer = await raw(gateway.port, SECRET_REQUEST)
    finally:
        await gateway.shutdown(1.0)
        server.close()
    assert status_of(answer) == 502
    assert b"upstream.tls_failed" in answer
    assert b"".join(received) == b""
