"""live.tls-versions, live.tls-ciphers, live.tls-certificate, live.hsts and live.plain-http,
against real TLS endpoints (trustme certificates, real handshakes) and plain-HTTP listeners."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bastion.audit.checks.live_transport import (
    check_hsts,
    check_plain_http,
    check_tls_certificate,
    check_tls_ciphers,
    check_tls_versions,
)
from bastion.audit.model import Outcome
from tests.audit.live.conftest import (
    ALICE,
    MakeContext,
    StartAPI,
    assert_fails,
    assert_masked,
    assert_passes,
    only,
)
from tests.audit.live.serving import Served, bare_tls, canned_http, server_context

Endpoint = Callable[..., Awaitable[Served]]


@pytest.fixture
async def tls_endpoint() -> AsyncIterator[Endpoint]:
    """``await tls_endpoint(leaf, legacy=True)``: a bare TLS endpoint with that setup."""
    served: list[Served] = []

    async def start(cert: trustme.LeafCert | tuple[str, str], **settings: object) -> Served:
        served.append(await bare_tls(server_context(cert, **settings)))  # type: ignore[arg-type]
        return served[-1]

    yield start
    for item in served:
        await item.close()


async def test_tls_versions_pass_on_a_tls12_and_13_server(
    tls_endpoint: Endpoint, leaf: trustme.LeafCert, make_context: MakeContext
) -> None:
    endpoint = await tls_endpoint(leaf)
    ctx = make_context(endpoint.url)
    finding = assert_passes(await check_tls_versions(ctx))
    assert finding.message == "SSL 3.0, TLS 1.0 and 1.1 refused; TLS 1.2 and TLS 1.3 offered"
    assert ctx.used == 5  # four ClientHellos and a TLS 1.3 handshake, each counted


async def test_tls_versions_fire_on_a_server_that_speaks_tls10(
    tls_endpoint: Endpoint, leaf: trustme.LeafCert, make_context: MakeContext
) -> None:
    """The local OpenSSL (3.x) can still serve TLS 1.0 at security level 0: a real legacy
    server, which the raw ClientHello reaches whatever the client library would offer."""
    endpoint = await tls_endpoint(leaf, legacy=True)
    finding = assert_fails(
        await check_tls_versions(make_context(endpoint.url)), "TLS 1.0", "TLS 1.1"
    )
    assert [e.location for e in finding.evidence] == ["tls TLS 1.0", "tls TLS 1.1"]
    assert "--tlsv1.0 --tls-max 1.0" in finding.evidence[0].curl


async def test_tls_checks_skip_a_plain_http_target(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    ctx = make_context(api.url)
    for check in (check_tls_versions, check_tls_ciphers, check_tls_certificate, check_hsts):
        assert only(await check(ctx)).outcome is Outcome.SKIP


async def test_tls_ciphers_pass_with_the_mozilla_intermediate_suites(
    tls_endpoint: Endpoint, leaf: trustme.LeafCert, make_context: MakeContext
) -> None:
    endpoint = await tls_endpoint(leaf)
    assert_passes(await check_tls_ciphers(make_context(endpoint.url)))


async def test_tls_ciphers_fire_on_cbc_suites_and_list_each(
    tls_endpoint: Endpoint, leaf: trustme.LeafCert, make_context: MakeContext
) -> None:
    ciphers = "ECDHE+AESGCM:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"
    endpoint = await tls_endpoint(leaf, ciphers=ciphers)
    finding = assert_fails(await check_tls_ciphers(make_context(endpoint.url)))
    names = {e.location.removeprefix("tls-suite ") for e in finding.evidence}
    assert names == {
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    }
    assert {e.curl.split("--ciphers ")[1].split()[0] for e in finding.evidence} == {
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
    }


async def test_tls_ciphers_fire_on_a_legacy_server(
    tls_endpoint: Endpoint, ca: trustme.CA, make_context: MakeContext
) -> None:
    rsa_leaf = ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    endpoint = await tls_endpoint(rsa_leaf, legacy=True)
    finding = assert_fails(await check_tls_ciphers(make_context(endpoint.url)))
    names = {e.location for e in finding.evidence}
    assert "tls-suite TLS_RSA_WITH_AES_128_CBC_SHA" in names  # static RSA key exchange


async def test_tls_certificate_passes_for_a_trusted_matching_certificate(
    tls_endpoint: Endpoint, leaf: trustme.LeafCert, make_context: MakeContext
) -> None:
    endpoint = await tls_endpoint(leaf)
    finding = assert_passes(await check_tls_certificate(make_context(endpoint.url)))
    assert "certificate verified" in finding.message


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong-name", "Hostname mismatch"),
        ("untrusted", "unable to get local issuer certificate"),
        ("expired", "certificate has expired"),
        ("expiring", "expires in 5 days"),
    ],
)
async def test_tls_certificate_fires(
    tls_endpoint: Endpoint,
    ca: trustme.CA,
    make_context: MakeContext,
    case: str,
    words: str,
) -> None:
    now = dt.datetime.now(dt.UTC)
    leaf = {
        "wrong-name": lambda: ca.issue_cert("api.other.example"),
        "untrusted": lambda: trustme.CA().issue_cert("localhost"),
        "expired": lambda: ca.issue_cert(
            "localhost",
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        ),
        "expiring": lambda: ca.issue_cert(
            "localhost", not_after=now + dt.timedelta(days=5, hours=12)
        ),
    }[case]()
    endpoint = await tls_endpoint(leaf)
    finding = assert_fails(await check_tls_certificate(make_context(endpoint.url)), words)
    assert finding.evidence[0].curl.startswith("curl -sv -o /dev/null https://localhost:")


def small_rsa_chain(directory: Path) -> tuple[str, str, str]:
    """A CA and a leaf with a 1024-bit RSA key (trustme makes only strong keys)."""
    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, key: rsa.RSAPrivateKey, issuer: str, signer: rsa.RSAPrivateKey,
                    ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    ca_cert = certificate("weak ca", ca_key, "weak ca", ca_key, True)
    leaf_cert = certificate("localhost", leaf_key, "weak ca", ca_key, False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "leaf.pem", directory / "leaf-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(leaf_cert.public_bytes(pem))
    paths[2].write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(paths[0]), str(paths[1]), str(paths[2])


async def test_tls_certificate_fires_on_a_1024_bit_rsa_key(
    tls_endpoint: Endpoint, make_context: MakeContext, tmp_path: Path
) -> None:
    ca_file, cert, key = small_rsa_chain(tmp_path)
    endpoint = await tls_endpoint((cert, key), ciphers="ECDHE+AESGCM:@SECLEVEL=0")
    finding = assert_fails(
        await check_tls_certificate(
            make_context(endpoint.url, verify=ssl.create_default_context(cafile=ca_file))
        ),
        "RSA key of 1024 bits",
    )
    assert "verification failed" in finding.message  # the platform verifier says so too


async def test_hsts_passes_on_every_response(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(tls=True)
    finding = assert_passes(await check_hsts(make_context(api.url, auth=[ALICE])))
    assert finding.message == "all 3 responses carry HSTS with max-age >= one year"


async def test_hsts_fires_when_missing(start_api: StartAPI, make_context: MakeContext) -> None:
    api = await start_api("no-hsts", tls=True)
    finding = assert_fails(
        await check_hsts(make_context(api.url, auth=[ALICE])), "no Strict-Transport-Security"
    )
    assert {e.response.split()[1] for e in finding.evidence} == {"200", "401", "404"}
    assert_masked(finding, ALICE[1])


REFUSE = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
SERVE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
REDIRECT = (
    b"HTTP/1.1 308 Permanent Redirect\r\nlocation: https://localhost/\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


@pytest.mark.parametrize(
    ("profile", "answer", "outcome"),
    [
        ("api", REFUSE, Outcome.PASS),
        ("api", None, Outcome.PASS),  # closed
        ("api", SERVE, Outcome.FAIL),
        ("api", REDIRECT, Outcome.FAIL),
        ("browser", REDIRECT, Outcome.PASS),
        ("browser", REFUSE, Outcome.FAIL),
        ("browser", None, Outcome.FAIL),
    ],
)
async def test_plain_http_per_profile(
    tls_endpoint: Endpoint,
    leaf: trustme.LeafCert,
    make_context: MakeContext,
    profile: str,
    answer: bytes | None,
    outcome: Outcome,
) -> None:
    endpoint = await tls_endpoint(leaf)
    if answer is None:
        plain_url = "http://localhost:1/"  # nothing listens on port 1
        served = None
    else:
        served = await canned_http(answer)
        plain_url = served.url + "/"
    try:
        ctx = make_context(endpoint.url, profile=profile, plain_http_url=plain_url)
        finding = only(await check_plain_http(ctx))
    finally:
        if served is not None:
            await served.close()
    assert finding.outcome is outcome, finding
    if outcome is Outcome.FAIL:
        assert finding.evidence[0].curl == f"curl -i {plain_url}"


async def test_plain_http_fires_when_the_api_itself_is_plain(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_fails(await check_plain_http(make_context(api.url)), "served over plain HTTP")
