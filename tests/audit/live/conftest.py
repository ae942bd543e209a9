"""Fixtures for the live checks: weak APIs served for real, and audit contexts pointed at them."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from bastion.audit.context import LiveContext
from bastion.audit.model import Finding, Outcome
from tests.audit.live.serving import Served, serve_app, server_context
from tests.audit.live.weak_api import WeakAPI, build_app, document

ALICE = ("X-API-Key", "k-alice-0123456789")
BOB = ("X-API-Key", "k-bob-0123456789")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)


@dataclass
class Running:
    api: WeakAPI
    served: Served

    @property
    def url(self) -> str:
        return self.served.url


StartAPI = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_api(
    postgres_dsn: str, pg_schema: str, leaf: trustme.LeafCert
) -> AsyncIterator[StartAPI]:
    """``await start_api("no-hsts", tls=True)``: the weak API with those weaknesses, served."""
    running: list[Running] = []

    async def start(*weak: str, tls: bool = False, **settings: Any) -> Running:
        api = WeakAPI(frozenset(weak), postgres_dsn, pg_schema, **settings)
        served = await serve_app(build_app(api), server_context(leaf) if tls else None)
        running.append(Running(api, served))
        return running[-1]

    yield start
    for item in running:
        await item.served.close()
        await item.api.close()


MakeContext = Callable[..., LiveContext]


@pytest.fixture
async def make_context(ca_file: str) -> AsyncIterator[MakeContext]:
    """``make_context(url, auth=[ALICE], aggressive=True)``: what ``bastion audit`` would build,
    with the weak API's OpenAPI document unless ``openapi=None``."""
    clients: list[httpx.AsyncClient] = []

    def make(
        url: str,
        *,
        auth: Sequence[tuple[str, str]] = (),
        openapi: Any = "weak",
        aggressive: bool = False,
        **settings: Any,
    ) -> LiveContext:
        verify = ssl.create_default_context(cafile=ca_file)
        client = httpx.AsyncClient(verify=verify, timeout=10.0)
        clients.append(client)
        return LiveContext(
            base_url=url,
            client=client,
            auth=list(auth),
            document=document() if openapi == "weak" else openapi,
            aggressive=aggressive,
            verify=settings.pop("verify", verify),
            **settings,
        )

    yield make
    for client in clients:
        await client.aclose()


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def assert_fails(findings: list[Finding], *words: str) -> Finding:
    finding = only(findings)
    assert finding.outcome is Outcome.FAIL, finding
    assert finding.evidence, "a failed live check carries evidence"
    text = finding.message + " ".join(e.summary for e in finding.evidence)
    for word in words:
        assert word in text, (word, text)
    return finding


def assert_passes(findings: list[Finding]) -> Finding:
    finding = only(findings)
    assert finding.outcome is Outcome.PASS, finding
    return finding


def assert_masked(finding: Finding, *secrets: str) -> None:
    """Every piece of evidence has a curl, and no secret appears anywhere in it."""
    for evidence in finding.evidence:
        for secret in secrets:
            for text in (evidence.curl, evidence.response, evidence.summary, finding.message):
                assert secret not in text, (secret, text)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)
