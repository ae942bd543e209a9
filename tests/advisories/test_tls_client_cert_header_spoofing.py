"""Advisory: client-certificate header spoofing. Behind a TLS-terminating proxy, applications
often trust fields such as ``X-SSL-Client-Cert`` or ``Client-Cert`` (RFC 9440) as the proxy's
word about the client's certificate. Only bastion saw the handshake, so any such field a client
sends itself is removed before the upstream, with or without a real client certificate."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trustme

from tests.engine.helpers import head_and_body
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import client_context, issue, start_tls_gateway, tls_config, tls_request

FORGED = {
    "client-cert": ":MIIBforged=:",
    "client-cert-chain": ":MIIBforged=:",
    "x-ssl-client-cert": "-----BEGIN CERTIFICATE-----forged",
    "ssl-client-cert": "forged",
    "x-client-cert": "forged",
    "x-ssl-client-verify": "SUCCESS",
    "x-client-verify": "SUCCESS",
    "x-ssl-client-dn": "CN=admin",
    "x-ssl-client-s-dn": "CN=admin",
    "x-forwarded-client-cert": 'Hash=forged;Subject="CN=admin"',
}


@pytest.mark.parametrize("with_certificate", [False, True])
async def test_client_certificate_fields_from_clients_never_reach_the_upstream(
    upstream: Upstream, tmp_path: Path, with_certificate: bool
) -> None:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    cert = issue(server_ca, tmp_path / "server", "localhost")
    ca_file = tmp_path / "clients.pem"
    client_ca.cert_pem.write_to_path(str(ca_file))
    config = tls_config(
        upstream.url,
        tmp_path / "state",
        certificates=[cert.files()],
        client_auth={"mode": "optional", "ca": [str(ca_file)], "unmapped": "subject"},
    )
    gateway = await start_tls_gateway(config)
    context = client_context(server_ca)
    if with_certificate:
        client = issue(client_ca, tmp_path / "client", "svc", "svc.test", common_name="svc")
        context.load_cert_chain(client.cert, client.key)
    forged = "".join(f"{name}: {value}\r\n" for name, value in FORGED.items())
    try:
        response, _ = await tls_request(
            gateway.port,
            context,
            f"GET / HTTP/1.1\r\nhost: localhost\r\n{forged}connection: close\r\n\r\n".encode(),
        )
    finally:
        await gateway.close()
    assert response.startswith(b"HTTP/1.1 200 ")
    received = {name for name, _ in orjson.loads(head_and_body(response)[1])["headers"]}
    assert received.isdisjoint(FORGED)
    assert upstream.seen[0].header("x-ssl-client-dn") is None
