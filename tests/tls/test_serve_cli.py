"""``bastion serve --tls`` as a user runs it: the development CA on first run with trust
instructions, HTTPS with HSTS, the plain listener, SIGTERM; a bad key is one line and exit 2."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from pathlib import Path

import httpx
import pytest
import trustme

from tests.engine.upstream_app import Upstream
from tests.ports import free_port
from tests.tls.helpers import issue

BASTION = str(Path(sys.executable).parent / "bastion")


async def read_lines_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        line = await asyncio.wait_for(stream.readline(), 20)
        if not line:
            break
        seen += line
    return seen


@pytest.mark.timeout(60)
async def test_serve_tls_with_the_development_certificate(
    upstream: Upstream, tmp_path: Path
) -> None:
    listen, plain, admin = free_port(), free_port(), free_port()
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"""
events: {{sink: none}}
timeouts: {{shutdown_grace: 2s}}
tls:
  plain_http: {{listen: "127.0.0.1:{plain}", policy: redirect}}
"""
    )
    state = tmp_path / "state"
    process = await asyncio.create_subprocess_exec(
        BASTION,
        "serve",
        "--tls",
        "--config",
        str(config),
        "--upstream",
        upstream.url,
        "--listen",
        f"127.0.0.1:{listen}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--state-dir",
        str(state),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        text = (await read_lines_until(process.stderr, b"TLS intermediate")).decode()
        ca = state / "tls" / "dev-ca.pem"
        assert f"curl --cacert {ca.resolve()}" in text
        assert f"https://127.0.0.1:{listen}" in text
        assert "development certificate" in text
        assert (state / "tls" / "dev-key.pem").stat().st_mode & 0o777 == 0o600

        context = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(f"https://localhost:{listen}/hello")
            assert response.status_code == 200
            assert response.headers["strict-transport-security"].startswith("max-age=31536000")
            assert response.json()["target"] == "/hello"
            redirect = await client.get(f"http://localhost:{plain}/hello?x=1")
            assert redirect.status_code == 308
            assert redirect.headers["location"] == f"https://localhost:{listen}/hello?x=1"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    ca = trustme.CA()
    one = issue(ca, tmp_path, "one", "localhost")
    two = issue(ca, tmp_path, "two", "localhost")
    process = await asyncio.create_subprocess_exec(
        BASTION,
        "serve",
        "--upstream",
        "http://127.0.0.1:9",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
        "--state-dir",
        str(tmp_path / "state"),
        "--tls-cert",
        str(one.cert),
        "--tls-key",
        str(two.key),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"does not match the certificate" in stderr
    assert str(one.cert).encode() in stderr
    assert b"Traceback" not in stderr
    assert b"PRIVATE KEY" not in stderr
