"""Live encryption-in-transit checks: protocol versions, TLS 1.2 cipher suites, the certificate,
HSTS on every response, and what plain HTTP gets.

Versions and suites are asked with raw ClientHellos (see ``live_tls_probe``: what the server
accepts, independent of what the local OpenSSL would offer); the certificate is read and
verified with Python's ``ssl`` (the platform's store, or the operator's ``--ca`` context). A
target given as ``http://`` skips the TLS checks and fails ``live.plain-http`` instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from bastion.audit.checks.live_support import guarded, probe_operation, seen
from bastion.audit.checks.live_tls_probe import (
    ALL_SUITES,
    BY_CODE,
    CURL_FLAGS,
    OUTSIDE,
    SSL3,
    TIMEOUT,
    TLS1_0,
    TLS1_1,
    TLS1_2,
    VERSION_NAMES,
    offer,
)
from bastion.audit.context import LiveContext
from bastion.audit.model import (
    CheckInfo,
    Evidence,
    Finding,
    Kind,
    Practice,
    Registry,
    Severity,
    failed,
    passed,
    skipped,
)

ONE_YEAR = 31_536_000
MAX_SUITES_LISTED = 16
EXPIRY_WARNING_DAYS = 14

TLS_VERSIONS = CheckInfo(
    id="live.tls-versions",
    title="SSL 3.0, TLS 1.0 and 1.1 refused, TLS 1.2 or 1.3 offered",
    practice=Practice.ENCRYPTION,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "A ClientHello offering at most SSL 3.0, TLS 1.0 or TLS 1.1 is refused, and a TLS 1.2 "
        "or TLS 1.3 handshake succeeds."
    ),
    rationale=(
        "SSL 3.0 is broken (POODLE) and TLS 1.0 and 1.1 are deprecated: their CBC "
        "constructions and SHA-1/MD5 handshake signatures are weak, and a server that still "
        "accepts them lets an attacker force old clients onto them. Versions are asked with raw "
        "ClientHellos, so the answer is the server's, whatever the auditing machine's OpenSSL "
        "could offer."
    ),
    references=(
        "RFC 8996",
        "RFC 7568",
        "Mozilla Server Side TLS 5.8 (intermediate)",
        "ASVS 5.0 V12.1.1",
        "OWASP API8:2023",
    ),
)

TLS_CIPHERS = CheckInfo(
    id="live.tls-ciphers",
    title="TLS 1.2 cipher suites within the Mozilla intermediate profile",
    practice=Practice.ENCRYPTION,
    severity=Severity.MEDIUM,
    kind=Kind.LIVE,
    criterion=(
        "Offered only suites outside the Mozilla intermediate profile (CBC, static RSA, DHE, "
        "3DES, RC4, NULL, anonymous, export ...), the server refuses the TLS 1.2 handshake."
    ),
    rationale=(
        "The intermediate profile keeps forward secrecy (ECDHE) and authenticated encryption "
        "(AES-GCM, ChaCha20-Poly1305) for every client that matters; each further suite is an "
        "attack surface (Lucky13, SWEET32, ROBOT, RC4 biases) with no client that needs it. The "
        "server is offered the outside suites repeatedly, each accepted one removed, to list "
        "them all."
    ),
    references=("Mozilla Server Side TLS 5.8 (intermediate)", "ASVS 5.0 V12.1.2", "RFC 9325 §4.2"),
)

TLS_CERTIFICATE = CheckInfo(
    id="live.tls-certificate",
    title="Certificate chains to a trusted root, names the host, has a strong key, is in date",
    practice=Practice.ENCRYPTION,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "The certificate verifies against the trust store (or the CA given with --ca), matches "
        "the host name, has an RSA key of at least 2048 bits or an EC key of at least 256 bits, "
        f"and is valid for at least {EXPIRY_WARNING_DAYS} more days."
    ),
    rationale=(
        "Clients that must skip verification to talk to an API can be intercepted by anyone on "
        "the path; short keys are factorable; an expiring certificate is an outage waiting to "
        "happen, and the reason teams switch verification off."
    ),
    references=("ASVS 5.0 V12.2.2", "Mozilla Server Side TLS 5.8", "RFC 9525", "RFC 5280 §6"),
)

HSTS = CheckInfo(
    id="live.hsts",
    title="HSTS on every response with max-age of at least one year",
    practice=Practice.ENCRYPTION,
    severity=Severity.MEDIUM,
    kind=Kind.LIVE,
    criterion=(
        "Every HTTPS response seen (success, 401, 404) carries Strict-Transport-Security with "
        f"max-age >= {ONE_YEAR}."
    ),
    rationale=(
        "HSTS makes clients refuse to speak plain HTTP to the host, which removes SSL "
        "stripping; browsers remember it from any response, so it must be on all of them, "
        "errors included, with a max-age long enough to outlive the visits in between."
    ),
    references=("RFC 6797", "ASVS 5.0 V3.4.1", "OWASP API8:2023"),
)

PLAIN_HTTP = CheckInfo(
    id="live.plain-http",
    title="Plain HTTP is refused (api profile) or permanently redirected (browser profile)",
    practice=Practice.ENCRYPTION,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "api profile: plain HTTP is closed or answered 4xx, never served nor redirected; "
        "browser profile: plain HTTP is answered 301/308 to the https:// URL. The API itself "
        "is served over HTTPS."
    ),
    rationale=(
        "An API client that follows a redirect has already sent its credential in clear, so "
        "an API should refuse plain HTTP outright and let the client fail loudly; a browser "
        "needs the permanent redirect to reach HTTPS the first time. Plain HTTP is tried on "
        "port 80 of the target's host (or the plain-HTTP URL the operator names); the working "
        "credential is never sent there."
    ),
    references=("ASVS 5.0 V12.2.1", "RFC 9110 §15.4.9", "OWASP REST Security Cheat Sheet"),
)


def target(ctx: LiveContext) -> tuple[str, int, str | None]:
    """Host, port, and the SNI name (None for an IP address)."""
    parts = urlsplit(ctx.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        return host, port, None
    except ValueError:
        return host, port, host


def is_https(ctx: LiveContext) -> bool:
    return urlsplit(ctx.base_url).scheme == "https"


def not_https(info: CheckInfo) -> Finding:
    return skipped(info, "the target is not served over HTTPS (see live.plain-http)")


def curl_tls(ctx: LiveContext, *flags: str) -> str:
    return shlex.join(["curl", "-sv", "-o", "/dev/null", *flags, ctx.base_url])


async def hello(ctx: LiveContext, version: int, suites: list[int]) -> tuple[int, int] | None:
    await ctx.spend()
    host, port, name = target(ctx)
    answer = await offer(host, port, version, suites, name)
    return None if answer is None else (answer.version, answer.suite)


async def handshake_13(ctx: LiveContext) -> bool:
    await ctx.spend()
    host, port, name = target(ctx)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=name), TIMEOUT
        )
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return False
    writer.close()
    return True


@guarded(TLS_VERSIONS)
async def check_tls_versions(ctx: LiveContext) -> list[Finding]:
    if not is_https(ctx):
        return [not_https(TLS_VERSIONS)]
    every = [s.code for s in ALL_SUITES]
    legacy: list[Evidence] = []
    for version in (SSL3, TLS1_0, TLS1_1):
        answer = await hello(ctx, version, every)
        if answer is not None and answer[0] == version:
            name = VERSION_NAMES[version]
            legacy.append(
                Evidence(
                    summary=f"{name} accepted (suite {BY_CODE[answer[1]].iana})",
                    location=f"tls {name}",
                    curl=curl_tls(ctx, *CURL_FLAGS[version]),
                    response=f"ServerHello {name}, {BY_CODE[answer[1]].openssl}",
                )
            )
    answer_12 = await hello(ctx, TLS1_2, every)
    offers_12 = answer_12 is not None and answer_12[0] == TLS1_2
    offers_13 = await handshake_13(ctx)
    modern = [n for n, ok in (("TLS 1.2", offers_12), ("TLS 1.3", offers_13)) if ok]
    if legacy:
        message = f"the server accepts {' and '.join(e.location[4:] for e in legacy)}"
        return [failed(TLS_VERSIONS, message, *legacy, offered=modern)]
    if not modern:
        message = "the server offers neither TLS 1.2 nor TLS 1.3"
        evidence = Evidence(message, "tls modern", curl_tls(ctx, *CURL_FLAGS[TLS1_2]), "refused")
        return [failed(TLS_VERSIONS, message, evidence)]
    return [
        passed(TLS_VERSIONS, f"SSL 3.0, TLS 1.0 and 1.1 refused; {' and '.join(modern)} offered")
    ]


@guarded(TLS_CIPHERS)
async def check_tls_ciphers(ctx: LiveContext) -> list[Finding]:
    if not is_https(ctx):
        return [not_https(TLS_CIPHERS)]
    remaining = [s.code for s in OUTSIDE]
    accepted: list[Evidence] = []
    while remaining and len(accepted) < MAX_SUITES_LISTED:
        answer = await hello(ctx, TLS1_2, remaining)
        if answer is None or answer[1] not in remaining:
            break
        suite = BY_CODE[answer[1]]
        remaining.remove(suite.code)
        accepted.append(
            Evidence(
                summary=f"{suite.iana} accepted",
                location=f"tls-suite {suite.iana}",
                curl=curl_tls(ctx, "--tlsv1.2", "--tls-max", "1.2", "--ciphers", suite.openssl),
                response=f"ServerHello TLS 1.2, {suite.openssl}",
            )
        )
    if accepted:
        more = " (and possibly more)" if len(accepted) >= MAX_SUITES_LISTED else ""
        return [
            failed(
                TLS_CIPHERS,
                f"{len(accepted)} TLS 1.2 suites outside the Mozilla intermediate profile are "
                f"accepted{more}",
                *accepted,
            )
        ]
    return [
        passed(
            TLS_CIPHERS,
            f"none of {len(OUTSIDE)} suites outside the Mozilla intermediate profile accepted",
        )
    ]


async def peer_certificate(ctx: LiveContext) -> bytes:
    """The leaf certificate, fetched without verifying it (so a bad one can be examined)."""
    await ctx.spend()
    host, port, name = target(ctx)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=name), TIMEOUT
    )
    der: bytes | None = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return der


async def verification_error(ctx: LiveContext) -> str | None:
    """What the platform verifier (or the ``--ca`` context) says is wrong, or None."""
    await ctx.spend()
    host, port, _ = target(ctx)
    context = ctx.verify if isinstance(ctx.verify, ssl.SSLContext) else ssl.create_default_context()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), TIMEOUT
        )
    except ssl.SSLCertVerificationError as error:
        return str(error.verify_message or error.reason or error)
    writer.close()
    return None


def key_problem(certificate: x509.Certificate) -> str | None:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return f"RSA key of {key.key_size} bits (at least 2048 expected)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        return f"EC key on {key.curve.name} ({key.curve.key_size} bits; at least 256 expected)"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA key (not accepted by current clients)"
    return None


@guarded(TLS_CERTIFICATE)
async def check_tls_certificate(ctx: LiveContext) -> list[Finding]:
    if not is_https(ctx):
        return [not_https(TLS_CERTIFICATE)]
    try:
        der = await peer_certificate(ctx)
    except ssl.SSLError as error:
        message = f"no TLS handshake could fetch the certificate: {error.reason or error}"
        evidence = Evidence(message, "tls certificate", curl_tls(ctx), type(error).__name__)
        return [failed(TLS_CERTIFICATE, message, evidence)]
    certificate = x509.load_der_x509_certificate(der)
    problems: list[str] = []
    verdict = await verification_error(ctx)
    if verdict is not None:
        problems.append(f"verification failed: {verdict}")
    weak = key_problem(certificate)
    if weak:
        problems.append(weak)
    left = certificate.not_valid_after_utc - datetime.now(UTC)
    if 0 < left.days < EXPIRY_WARNING_DAYS:
        problems.append(f"expires in {left.days} days ({certificate.not_valid_after_utc:%Y-%m-%d})")
    subject = certificate.subject.rfc4514_string()
    described = (
        f"subject {subject}, issuer {certificate.issuer.rfc4514_string()}, valid until "
        f"{certificate.not_valid_after_utc:%Y-%m-%d}"
    )
    if problems:
        evidence = Evidence(
            summary="; ".join(problems),
            location="tls certificate",
            curl=curl_tls(ctx),
            response=described,
        )
        return [failed(TLS_CERTIFICATE, "; ".join(problems), evidence)]
    return [passed(TLS_CERTIFICATE, f"certificate verified: {described}")]


def hsts_max_age(value: str) -> int | None:
    for directive in value.split(";"):
        name, _, number = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            try:
                return int(number.strip().strip('"'))
            except ValueError:
                return None
    return None


@guarded(HSTS)
async def check_hsts(ctx: LiveContext) -> list[Finding]:
    if not is_https(ctx):
        return [not_https(HSTS)]
    op = probe_operation(ctx)
    samples = [
        (op.method, op.path, False),
        ("GET", "/bastion-audit-not-found", False),
    ]
    if ctx.auth:
        samples.append((op.method, op.path, True))
    bad: list[Evidence] = []
    for method, path, with_auth in samples:
        response = await ctx.request(method, path, with_auth=with_auth)
        value = response.headers.get("strict-transport-security")
        age = hsts_max_age(value) if value else None
        if value is None:
            problem = "no Strict-Transport-Security"
        elif age is None or age < ONE_YEAR:
            problem = f"Strict-Transport-Security max-age {age} (at least {ONE_YEAR} expected)"
        else:
            continue
        bad.append(
            seen(
                ctx,
                f"{response.status_code} answer to {method} {path}: {problem}",
                response,
                method,
                path,
                with_auth=with_auth,
                show=("strict-transport-security",),
            )
        )
    if bad:
        return [
            failed(HSTS, f"{len(bad)} of {len(samples)} responses lack a sufficient HSTS", *bad)
        ]
    return [passed(HSTS, f"all {len(samples)} responses carry HSTS with max-age >= one year")]


def plain_url(ctx: LiveContext) -> str:
    if ctx.plain_http_url:
        return ctx.plain_http_url
    parts = urlsplit(ctx.base_url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit(("http", netloc, parts.path or "/", "", ""))


@guarded(PLAIN_HTTP)
async def check_plain_http(ctx: LiveContext) -> list[Finding]:
    if not is_https(ctx):
        op = probe_operation(ctx)
        response = await ctx.request(op.method, op.path)
        evidence = seen(ctx, "the API answers over plain HTTP", response, op.method, op.path)
        return [failed(PLAIN_HTTP, "the API itself is served over plain HTTP", evidence)]
    url = plain_url(ctx)
    await ctx.spend()
    curl = shlex.join(["curl", "-i", url])
    try:
        response = await ctx.fetch("GET", url)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as error:
        if ctx.profile == "browser":
            evidence = Evidence(
                f"{url}: connection failed", "plain-http", curl, type(error).__name__
            )
            return [failed(PLAIN_HTTP, "browser profile: plain HTTP does not redirect", evidence)]
        return [passed(PLAIN_HTTP, f"plain HTTP is closed ({type(error).__name__} at {url})")]
    status = response.status_code
    location = response.headers.get("location", "")
    evidence = Evidence(
        summary=f"{url} answered {status}" + (f" to {location}" if location else ""),
        location="plain-http",
        curl=curl,
        response=f"HTTP/1.1 {status}" + (f"\nlocation: {location}" if location else ""),
    )
    if ctx.profile == "browser":
        if status in (301, 308) and location.startswith("https://"):
            return [passed(PLAIN_HTTP, f"plain HTTP is redirected permanently ({status})")]
        return [
            failed(PLAIN_HTTP, f"browser profile: plain HTTP answered {status}, no 301/308 "
                   "redirect to https://", evidence)
        ]  # fmt: skip
    if 400 <= status < 500:
        return [passed(PLAIN_HTTP, f"plain HTTP is refused ({status})")]
    kind = "redirected" if 300 <= status < 400 else "served"
    return [
        failed(
            PLAIN_HTTP,
            f"api profile: plain HTTP is {kind} ({status}); a client has sent its credential in "
            "clear before it learns",
            evidence,
        )
    ]


def register(registry: Registry) -> None:
    registry.add_live(TLS_VERSIONS, check_tls_versions)
    registry.add_live(TLS_CIPHERS, check_tls_ciphers)
    registry.add_live(TLS_CERTIFICATE, check_tls_certificate)
    registry.add_live(HSTS, check_hsts)
    registry.add_live(PLAIN_HTTP, check_plain_http)
