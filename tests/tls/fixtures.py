"""A TLS gateway with an RSA certificate (so RSA key-exchange suites could be negotiated at all
if the profile allowed them), for the handshake tests and the downgrade advisories alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from tests.engine.upstream_app import Upstream
from tests.tls.helpers import Issued, TLSGateway, issue, start_tls_gateway, tls_config


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def rsa_cert(ca: trustme.CA, tmp_path: Path) -> Issued:
    return issue(ca, tmp_path, "localhost", "localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)


@pytest.fixture
async def gateway(
    upstream: Upstream, rsa_cert: Issued, tmp_path: Path
) -> AsyncIterator[TLSGateway]:
    config = tls_config(upstream.url, tmp_path / "state", certificates=[rsa_cert.files()])
    gw = await start_tls_gateway(config)
    yield gw
    await gw.close()
