"""bastion's own gateway in front of the weakest API: every live check that fails against the
API alone passes through the gateway.

The weak API lacks authentication (and takes keys in the query), rate limits, HSTS, request ids
and generic errors; it reflects any CORS origin and serves its metrics and .env to anyone. A
real ``bastion serve`` process (TLS with a trustme certificate, a plain-HTTP listener that
refuses, API keys, its token endpoint, a per-consumer limit and the login preset) goes in front,
and the same checks run again, the aggressive ones included, with a key and with a token the
gateway issued. The gateway also validates requests against the API's OpenAPI document in
strict mode, so bad input and undeclared properties never reach the weak API.
"""

from __future__ import annotations

import asyncio
import copy
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trustme
import yaml
from click.testing import CliRunner

from bastion.audit.checks import (
    live_auth,
    live_headers,
    live_input,
    live_jwt,
    live_ratelimit,
    live_transport,
)
from bastion.audit.context import LiveContext
from bastion.audit.model import Finding, Outcome, Registry
from bastion.cli.main import cli
from tests.audit.live.conftest import ALICE, MakeContext, StartAPI
from tests.audit.live.weak_api import document
from tests.ports import free_port

# The weak API's weaknesses a gateway can fix from outside the application.
WEAKEST = (
    "no-auth", "query-key", "no-www-authenticate", "no-rate-limit", "no-login-limit",
    "stack-traces", "no-hsts", "cors-reflect", "no-request-id", "open-metrics",
    "5xx-on-bad-input", "keeps-undeclared",
)  # fmt: skip


def live_registry() -> Registry:
    """The live families in the order a run should take them: safe checks first, the bursts
    of the rate-limit family last (they leave the credential limited for a while)."""
    registry = Registry()
    for family in (live_auth, live_transport, live_headers, live_jwt, live_input, live_ratelimit):
        family.register(registry)
    return registry


async def run_all(*contexts: LiveContext) -> dict[str, Finding]:
    """Each check once, with the first context that is not skipped for lack of a credential
    (a key for most, a bearer token for the JWT checks)."""
    results: dict[str, Finding] = {}
    for entry in live_registry():
        assert entry.live is not None
        for ctx in contexts:
            findings = await entry.live(ctx)
            assert len(findings) == 1
            results[entry.info.id] = findings[0]
            if findings[0].outcome is not Outcome.SKIP:
                break
    return results


def outcomes(results: dict[str, Finding], outcome: Outcome) -> set[str]:
    return {ident for ident, finding in results.items() if finding.outcome is outcome}


class Gateway:
    def __init__(self, process: asyncio.subprocess.Process, port: int, plain: int) -> None:
        self.process, self.port, self.plain = process, port, plain

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


SAFE_TEXT = r"^[^\x00-\x1f<>]*$"


def described() -> dict[str, Any]:
    """The weak API's document as its owners would publish it: every operation's refusals
    declared, every string and number bounded, the public login and health operations declared
    public on purpose. The API itself stays as weak as ever; only the gateway enforces this."""
    doc = copy.deepcopy(document())
    refusals = {
        "400": {"description": "invalid input"},
        "401": {"description": "no valid credential",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
        "403": {"description": "not allowed"},
        "429": {"description": "too many requests",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
    }  # fmt: skip
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation["responses"].update(refusals)
            if path in ("/login", "/health"):
                operation["x-bastion-public"] = f"{path} answers before a caller has a credential"
    for schema in _schemas(doc):
        if schema.get("type") == "string" and "enum" not in schema:
            schema.setdefault("pattern", SAFE_TEXT)
        if schema.get("type") in ("integer", "number"):
            schema.setdefault("maximum", 1_000_000)
        if schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
    return doc


def _schemas(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.append(node)
        for value in node.values():
            found.extend(_schemas(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_schemas(value))
    return found


def gateway_config(path: Path, upstream: str, leaf: trustme.LeafCert, plain: int) -> Path:
    cert, key = path.parent / "cert.pem", path.parent / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    openapi = path.parent / "openapi.json"
    openapi.write_bytes(orjson.dumps(described()))
    data: dict[str, Any] = {
        "state_dir": str(path.parent / "state"),
        "openapi": str(openapi),
        "validation": {"enabled": True, "strict": True},
        "admin": {"enabled": False},
        "events": {"sink": "file", "path": str(path.parent / "events.jsonl")},
        "monitoring": {"enabled": True,
                       "alerts": {"sinks": [{"type": "command", "argv": ["/bin/true"]}]}},
        "timeouts": {"shutdown_grace": "1s"},
        "auth": {
            "default": "required",
            "tokens": {"signing": {"issuer": "https://localhost", "audiences": ["https://localhost"]}},
        },
        "rate_limit": {
            # 10/s sustained, 60 at once: the other checks stay under it, a burst does not
            "policies": [
                {"name": "per-consumer", "key": ["consumer"], "rate": "600/minute", "burst": 60}
            ]
        },
        "tls": {
            "certificates": [{"cert": str(cert), "key": str(key)}],
            "plain_http": {"listen": f"127.0.0.1:{plain}", "policy": "refuse"},
        },
        "routes": [
            {"name": "login", "upstream": upstream, "path_prefix": "/login", "login": True,
             "auth": {"require": "public"}},
            {"name": "api", "upstream": upstream},
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
async def gateway_process() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


async def start_gateway(
    config: Path, processes: list[asyncio.subprocess.Process], plain: int
) -> Gateway:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bastion.cli.main import main; main()",
        "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        stderr=asyncio.subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    processes.append(process)
    assert process.stderr is not None
    deadline, seen = time.monotonic() + 20, b""
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        seen += line
        if b"listening on" in line:
            return Gateway(process, port, plain)
        if not line:
            break
    raise AssertionError(f"gateway did not start: {seen.decode(errors='replace')}")


def create_key(config: Path, consumer: str) -> str:
    result = CliRunner().invoke(
        cli, ["keys", "create", "--consumer", consumer, "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    secret: str = orjson.loads(result.output)["secret"]
    return secret


async def access_token(gateway: Gateway, key: str, ca_file: str) -> str:
    import ssl

    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as client:
        response = await client.post(
            f"{gateway.url}/oauth/token",
            headers={"X-API-Key": key},
            data={"grant_type": "client_credentials"},
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.mark.timeout(120)
async def test_the_gateway_moves_the_weakest_api_from_failing_to_passing(
    start_api: StartAPI,
    make_context: MakeContext,
    leaf: trustme.LeafCert,
    ca_file: str,
    tmp_path: Path,
    gateway_process: list[asyncio.subprocess.Process],
) -> None:
    weak = await start_api(*WEAKEST, limit=10_000)
    alone = await run_all(make_context(weak.url, auth=[ALICE], aggressive=True))
    assert outcomes(alone, Outcome.FAIL) == {
        "live.auth-enforced", "live.credential-in-query", "live.www-authenticate",
        "live.plain-http", "live.cors",
        "live.request-id", "live.error-bodies", "live.exposed-endpoints",
        "live.ratelimit-enforced", "live.ratelimit-login",
        "live.input-schema", "live.input-undeclared",
    }, {i: f.message for i, f in alone.items()}  # fmt: skip

    plain = free_port()
    config = gateway_config(tmp_path / "bastion.yaml", weak.url, leaf, plain)
    alice, bob = create_key(config, "alice"), create_key(config, "bob")
    gateway = await start_gateway(config, gateway_process, plain)
    token = await access_token(gateway, alice, ca_file)
    settings: dict[str, Any] = {
        "aggressive": True,
        "plain_http_url": f"http://localhost:{plain}/",
        "openapi": described(),
    }
    with_key = make_context(
        gateway.url, auth=[("X-API-Key", alice)], other_auth=[("X-API-Key", bob)], **settings
    )
    with_token = make_context(gateway.url, auth=[("Authorization", f"Bearer {token}")], **settings)
    behind = await run_all(with_key, with_token)
    report = {i: f.message for i, f in behind.items()}
    assert outcomes(behind, Outcome.FAIL) == set(), report
    assert outcomes(behind, Outcome.ERROR) == set(), report
    # what stays skipped: no HMAC key to guess (bastion signs with asymmetric keys)
    skips = {i: behind[i].message for i in outcomes(behind, Outcome.SKIP)}
    assert skips == {"live.jwt-weak-secret": "the token is signed with EdDSA, not an HMAC"}
    for finding in behind.values():
        for evidence in finding.evidence:
            assert alice not in evidence.curl
            assert token not in evidence.curl

    # The whole audit, as CI runs it: static checks of the published document, live checks
    # with --aggressive, and (behind the gateway) attestation from the gateway's config.
    document_file = tmp_path / "openapi.json"  # described(), written by gateway_config
    common = ["--openapi", str(document_file), "--ca", ca_file, "--aggressive",
              "--format", "json", "--no-progress", "--fail-on", "low"]  # fmt: skip
    weak_alone = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["audit", weak.url, *common, "--auth", f"{ALICE[0]}: {ALICE[1]}",
         "--out", str(tmp_path / "alone")],
    )  # fmt: skip
    assert weak_alone.exit_code == 1, weak_alone.output
    graded_alone = orjson.loads((tmp_path / "alone" / "bastion-audit.json").read_bytes())
    await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["audit", gateway.url, *common, "--auth", f"X-API-Key: {alice}",
         "--other-auth", f"X-API-Key: {bob}", "--plain-http-url", f"http://localhost:{plain}/",
         "--gateway-config", str(config), "--out", str(tmp_path / "behind")],
    )  # fmt: skip
    graded_behind = orjson.loads((tmp_path / "behind" / "bastion-audit.json").read_bytes())
    print(f"\ngrade alone {graded_alone['grade']}, behind bastion {graded_behind['grade']}")
    assert graded_alone["grade"] in ("D", "F"), graded_alone["grade"]
    failing = [
        (f["check"], f["message"]) for f in graded_behind["findings"] if f["outcome"] == "fail"
    ]
    assert graded_behind["grade"] == "A+", failing
