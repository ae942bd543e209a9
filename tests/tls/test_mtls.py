"""Client certificates (mTLS) as an authentication method, through the real engine and the
gateway's own chain (placement, keys, requirements, identity headers)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.config.tls import ClientAuthConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.pipeline.decisions import Deny
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import ClientAddress, Headers, Request, TLSInfo
from bastion.tls.mtls import ClientCertificateGuard
from bastion.tls.server import ServerTLS
from tests.engine.helpers import FAST_TIMEOUTS, head_and_body
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import Issued, client_context, issue, tls_request

V = ssl.TLSVersion


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.server = issue(self.server_ca, tmp_path / "server", "localhost")
        self.client_ca_file = tmp_path / "clients-ca.pem"
        self.client_ca.cert_pem.write_to_path(str(self.client_ca_file))
        self.tmp = tmp_path

    def client(
        self, name: str, *identities: str, ca: trustme.CA | None = None, **kw: Any
    ) -> Issued:
        return issue(
            ca or self.client_ca,
            self.tmp / "clients",
            name,
            *(identities or (f"{name}.clients.test",)),
            **kw,
        )

    def context(self, cert: Issued | None, **kw: Any) -> ssl.SSLContext:
        context = client_context(self.server_ca, **kw)
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        return context


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


async def gateway(
    upstream: Upstream,
    setup: Setup,
    client_auth: dict[str, Any],
    routes: list[dict[str, Any]] | None = None,
) -> tuple[GatewayServer, MemorySink]:
    config = BastionConfig.model_validate(
        {
            "routes": routes or [{"name": "api", "upstream": upstream.url}],
            "timeouts": FAST_TIMEOUTS,
            "admin": {"enabled": False},
            "events": {"sink": "none"},
            "state_dir": str(setup.tmp / "state"),
            "tls": {
                "certificates": [setup.server.files()],
                "client_auth": {"ca": [str(setup.client_ca_file)], **client_auth},
            },
        }
    )
    events = MemorySink()
    chain = build_gateway_chain(config, events)
    await chain.start()
    server = GatewayServer(
        config=config,
        chain=chain,
        listen=HostPort("127.0.0.1", 0),
        ssl=ServerTLS(config.tls, config.state_dir).load(),
    )
    await server.start()
    return server, events


async def refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the server refused the client: a failed handshake, or (TLS 1.3, where the
    server judges the client's certificate after the client's side of the handshake is done)
    a connection ended without an answer."""
    try:
        response, _ = await tls_request(port, context, request())
    except (ssl.SSLError, ConnectionError):
        return True
    return response == b""


def request(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n".encode()


def forwarded(response: bytes) -> dict[str, str]:
    return dict(orjson.loads(head_and_body(response)[1])["headers"])


RULES = [
    {
        "consumer": "billing",
        "subject_cn": "billing-service",
        "tier": "gold",
        "scopes": ["orders:read"],
    },
    {"consumer": "reports", "san": "spiffe://corp.test/reports"},
]


@pytest.mark.parametrize("version", [V.TLSv1_2, V.TLSv1_3])
async def test_a_mapped_certificate_is_an_identity(
    upstream: Upstream, setup: Setup, version: ssl.TLSVersion
) -> None:
    server, events = await gateway(upstream, setup, {"mode": "required", "consumers": RULES})
    cert = setup.client("billing", common_name="billing-service")
    try:
        response, _ = await tls_request(
            server.port, setup.context(cert, minimum=version, maximum=version), request()
        )
    finally:
        await server.shutdown(1.0)
    assert response.startswith(b"HTTP/1.1 200 ")
    headers = forwarded(response)
    assert headers["x-bastion-consumer"] == "billing"
    assert headers["x-bastion-auth-method"] == "mtls"
    assert headers["x-bastion-tier"] == "gold"
    assert headers["x-bastion-scopes"] == "orders:read"
    assert headers["x-bastion-key-id"].startswith("sha256:")
    success = [e for e in events.events if e.action == "auth.success"]
    assert success[0].user_id == "billing"
    assert success[0].fields["auth_method"] == "mtls"


def spiffe_client(setup: Setup, uri: str) -> Issued:
    """A client certificate whose only name is a URI SAN (trustme issues DNS/IP/e-mail only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = serialization.load_pem_private_key(setup.client_ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(setup.client_ca.cert_pem.bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    path, key_path = setup.tmp / "spiffe.pem", setup.tmp / "spiffe-key.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(setup.client_ca, path, key_path)


async def test_a_san_rule_maps_a_spiffe_id(upstream: Upstream, setup: Setup) -> None:
    server, _ = await gateway(upstream, setup, {"mode": "required", "consumers": RULES})
    cert = spiffe_client(setup, "spiffe://corp.test/reports")
    try:
        response, _ = await tls_request(server.port, setup.context(cert), request())
    finally:
        await server.shutdown(1.0)
    assert forwarded(response)["x-bastion-consumer"] == "reports"


async def test_required_refuses_a_handshake_without_a_certificate(
    upstream: Upstream, setup: Setup
) -> None:
    server, _ = await gateway(upstream, setup, {"mode": "required", "consumers": RULES})
    try:
        assert await refused(server.port, setup.context(None))
    finally:
        await server.shutdown(1.0)
    assert upstream.seen == []


async def test_a_certificate_from_another_ca_is_refused(upstream: Upstream, setup: Setup) -> None:
    server, _ = await gateway(upstream, setup, {"mode": "optional", "consumers": RULES})
    stranger = setup.client("billing", ca=trustme.CA(), common_name="billing-service")
    try:
        assert await refused(server.port, setup.context(stranger))
    finally:
        await server.shutdown(1.0)
    assert upstream.seen == []


async def test_an_unmapped_certificate_is_refused_or_named_by_subject(
    upstream: Upstream, setup: Setup
) -> None:
    cert = setup.client("intruder", common_name="someone-else")
    server, events = await gateway(upstream, setup, {"mode": "required", "consumers": RULES})
    try:
        response, _ = await tls_request(server.port, setup.context(cert), request())
    finally:
        await server.shutdown(1.0)
    assert response.startswith(b"HTTP/1.1 401 ")
    assert b'"code":"auth.certificate_not_mapped"' in response
    assert events.actions()[-1] == "auth.certificate_not_mapped"
    assert upstream.seen == []

    server, _ = await gateway(upstream, setup, {"mode": "required", "unmapped": "subject"})
    try:
        response, _ = await tls_request(server.port, setup.context(cert), request())
    finally:
        await server.shutdown(1.0)
    assert forwarded(response)["x-bastion-consumer"] == "someone-else"


async def test_optional_lets_anonymous_callers_reach_the_requirement(
    upstream: Upstream, setup: Setup
) -> None:
    routes = [{"name": "api", "upstream": upstream.url, "auth": {"require": "required"}}]
    server, _ = await gateway(upstream, setup, {"mode": "optional", "consumers": RULES}, routes)
    cert = setup.client("billing", common_name="billing-service")
    try:
        anonymous, _ = await tls_request(server.port, setup.context(None), request())
        identified, _ = await tls_request(server.port, setup.context(cert), request())
    finally:
        await server.shutdown(1.0)
    assert anonymous.startswith(b"HTTP/1.1 401 ")
    assert b"auth.missing_credentials" in anonymous
    assert identified.startswith(b"HTTP/1.1 200 ")


async def test_optional_client_certificates_make_auto_routes_require_a_credential(
    upstream: Upstream, setup: Setup
) -> None:
    """With no API key yet, ``auth.default: auto`` would leave routes public; a configured
    client-certificate source counts as a credential source, so anonymous callers get 401."""
    server, _ = await gateway(upstream, setup, {"mode": "optional", "consumers": RULES})
    cert = setup.client("billing", common_name="billing-service")
    try:
        anonymous, _ = await tls_request(server.port, setup.context(None), request())
        identified, _ = await tls_request(server.port, setup.context(cert), request())
    finally:
        await server.shutdown(1.0)
    assert anonymous.startswith(b"HTTP/1.1 401 ")
    assert identified.startswith(b"HTTP/1.1 200 ")


async def test_route_scopes_apply_to_certificate_identities(
    upstream: Upstream, setup: Setup
) -> None:
    routes = [
        {
            "name": "read",
            "upstream": upstream.url,
            "path_prefix": "/orders",
            "auth": {"scopes": ["orders:read"]},
        },
        {
            "name": "admin",
            "upstream": upstream.url,
            "path_prefix": "/admin",
            "auth": {"scopes": ["admin"]},
        },
    ]
    server, _ = await gateway(upstream, setup, {"mode": "required", "consumers": RULES}, routes)
    cert = setup.client("billing", common_name="billing-service")
    try:
        allowed, _ = await tls_request(server.port, setup.context(cert), request("/orders/1"))
        refused, _ = await tls_request(server.port, setup.context(cert), request("/admin/x"))
    finally:
        await server.shutdown(1.0)
    assert allowed.startswith(b"HTTP/1.1 200 ")
    assert refused.startswith(b"HTTP/1.1 403 ")
    assert b"auth.insufficient_scope" in refused


def make_request(der: bytes | None) -> Request:
    return Request(
        method="GET",
        path="/",
        query="",
        headers=Headers([]),
        client=ClientAddress("127.0.0.1", 1),
        scheme="https",
        tls=TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", client_cert_der=der),
    )


def test_a_certificate_that_expires_while_connected_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    leaf = ca.issue_cert("svc.test", common_name="svc", not_after=ends)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    now = [ends.timestamp() - 10]
    guard = ClientCertificateGuard(
        ClientAuthConfig(mode="required", ca=(tmp_path,), unmapped="subject"), clock=lambda: now[0]
    )
    first = make_request(der)
    assert not isinstance(guard.check(first), Deny)
    assert first.state[IDENTITY].consumer == "svc"
    now[0] = ends.timestamp() + 1
    decision = guard.check(make_request(der))
    assert isinstance(decision, Deny)
    assert decision.code == "auth.expired_credentials"


def test_requests_without_a_certificate_are_left_to_the_requirement() -> None:
    guard = ClientCertificateGuard(ClientAuthConfig(mode="optional", ca=(Path("x"),)))
    request = make_request(None)
    assert not isinstance(guard.check(request), Deny)
    assert IDENTITY not in request.state
