"""An independent verdict: sslyze (its Mozilla TLS configuration checker) scans the listener.

sslyze speaks TLS with its own OpenSSL builds (nassl), including the legacy versions and suites
that a modern client library cannot even offer, and checks versions, suites, groups,
certificate type, lifetime and path, and known vulnerabilities against Mozilla's profile.
The development certificate (ECDSA P-256, 90 days, from the local CA) is what is served, and
sslyze is told to trust that CA for path validation.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.engine.upstream_app import Upstream
from tests.tls.helpers import start_tls_gateway, tls_config


async def sslyze(port: int, profile: str, ca: Path, out: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sslyze",
        f"localhost:{port}{{127.0.0.1}}",
        f"--mozilla_config={profile}",
        f"--certinfo_ca_file={ca}",
        f"--json_out={out}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("profile", ["intermediate", "modern"])
async def test_sslyze_finds_the_listener_compliant_with_mozilla(
    upstream: Upstream, tmp_path: Path, profile: str
) -> None:
    config = tls_config(upstream.url, tmp_path / "state", profile=profile)
    gateway = await start_tls_gateway(config)
    try:
        assert gateway.tls.dev is not None
        code, output = await sslyze(
            gateway.port, profile, gateway.tls.dev.ca_cert, tmp_path / "scan.json"
        )
    finally:
        await gateway.close()
    assert code == 0, output[-2000:]
    assert f'"{profile}" configuration' in output
    assert "OK - Compliant." in output
    scan = json.loads((tmp_path / "scan.json").read_text())["server_scan_results"][0]
    result = scan["scan_result"]
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert result[f"{old}_cipher_suites"]["result"]["accepted_cipher_suites"] == []
    accepted_12 = result["tls_1_2_cipher_suites"]["result"]["accepted_cipher_suites"]
    if profile == "modern":
        assert accepted_12 == []
    else:
        names = {suite["cipher_suite"]["name"] for suite in accepted_12}
        assert names
        assert all("ECDHE" in n and ("GCM" in n or "CHACHA20" in n) for n in names)
    curves = {c["name"] for c in result["elliptic_curves"]["result"]["supported_curves"]}
    assert curves <= {"X25519", "prime256v1", "secp256r1", "secp384r1"}


@pytest.mark.timeout(180)
async def test_sslyze_flags_a_non_compliant_server(tmp_path: Path) -> None:
    """The checker is not a rubber stamp: a server that also speaks TLS 1.0 fails it."""
    import ssl

    from bastion.tls.devca import ensure_dev_certificate

    paths, _ = ensure_dev_certificate(tmp_path, ["localhost", "127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.cert, paths.key)
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        code, output = await sslyze(
            server.sockets[0].getsockname()[1], "intermediate", paths.ca_cert, tmp_path / "x.json"
        )
    finally:
        server.close()
    assert code != 0
    assert "FAILED - Not compliant" in output
    assert "tls_versions" in output
