"""Regression: ``bastion audit`` pointed at a hostile target. An enormous body costs the scanner
at most a megabyte, a body trickled forever ends the check with ``error`` instead of holding
the audit, the operator's credential never appears in evidence in the forms a target echoes it
back in (percent-encoded, JSON-escaped, a Basic password decoded), the target's terminal escape
sequences are shown inert, and a discovery document cannot make the scanner fetch an address
on the scanner's own network."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest

from bastion.audit.checks.live_auth import check_auth_enforced, check_credential_in_query
from bastion.audit.checks.live_headers import check_error_bodies
from bastion.audit.checks.live_jwt import published_keys
from bastion.audit.checks.live_ratelimit import check_headers
from bastion.audit.checks.live_support import LEAK_SCAN
from bastion.audit.context import MAX_BODY, LiveContext
from bastion.audit.model import Outcome

Handler = Callable[[str, dict[str, str], asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Target:
    """A raw HTTP/1.1 server on loopback whose answers the test writes byte by byte."""

    handler: Handler
    port: int = 0
    seen: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                target = line.split(" ")[1]
                self.seen.append(target)
                headers = {}
                for item in fields:
                    name, _, value = item.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                await self.handler(target, headers, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Target]]]:
    started: list[Target] = []

    async def start(handler: Handler) -> Target:
        target = Target(handler)
        target.server = await asyncio.start_server(target._serve, "127.0.0.1", 0)
        target.port = target.server.sockets[0].getsockname()[1]
        started.append(target)
        return target

    yield start
    for target in started:
        assert target.server is not None
        target.server.close()


def context(url: str, client: httpx.AsyncClient, **settings: object) -> LiveContext:
    return LiveContext(url, client, document=None, **settings)  # type: ignore[arg-type]


async def test_an_enormous_body_costs_at_most_max_body(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    size = 64 * MAX_BODY

    async def huge(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: %d\r\n\r\n" % size)
        piece = b"x" * 65536
        for _ in range(size // len(piece)):
            w.write(piece)
            await w.drain()

    target = await serve(huge)
    async with httpx.AsyncClient(timeout=5.0) as client:
        ctx = context(target.url, client)
        tracemalloc.start()
        try:
            findings = await asyncio.wait_for(check_auth_enforced(ctx), 30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert findings
    # The peak counts this whole process, the hostile server's write buffers included: a
    # quarter of the body is far above what the scanner keeps and far below reading it whole.
    assert peak < 16 * MAX_BODY, f"peak {peak} bytes for a {size}-byte body"


async def test_a_body_trickled_forever_ends_the_check_in_error(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    async def trickle(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:  # one byte well within every read timeout, for ever
            w.write(b"1\r\nx\r\n")
            await w.drain()
            await asyncio.sleep(0.05)

    target = await serve(trickle)
    async with httpx.AsyncClient(timeout=0.5) as client:
        ctx = context(target.url, client)
        began = time.monotonic()
        findings = await asyncio.wait_for(check_auth_enforced(ctx), 10)
    assert time.monotonic() - began < 5
    assert [f.outcome for f in findings] == [Outcome.ERROR]
    assert "did not complete within 1.5 s" in findings[0].message


SECRET_KEY = "k3y+with/slash=="
BASIC = base64.b64encode(b"auditor:pa55/w0rd+x").decode()


async def test_echoed_credentials_are_masked_in_every_form(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    """A weak API that takes the key in the query and echoes the request (the target
    percent-encoded; headers JSON-escaped with ``\\/`` as PHP writes them; the Basic password
    decoded) must not put the operator's credentials in the report."""

    async def echo(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        basic = headers.get("authorization", "")[6:]
        decoded = base64.b64decode(basic).decode() if basic else ""
        body = json.dumps(
            {"target": target, "key": headers.get("x-api-key", ""), "basic": decoded}
        ).replace("/", "\\/")
        body += f"\ntarget={target} password={decoded.partition(':')[2]}"
        data = body.encode()
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))

    target = await serve(echo)
    auth = [("X-API-Key", SECRET_KEY), ("Authorization", f"Basic {BASIC}")]
    async with httpx.AsyncClient(timeout=5.0) as client:
        ctx = context(target.url, client, auth=auth)
        findings = await check_credential_in_query(ctx)
    assert findings[0].outcome is Outcome.FAIL
    assert any(quote(SECRET_KEY, safe="") in t for t in target.seen)  # the echo was real
    forms = [SECRET_KEY, quote(SECRET_KEY, safe=""), SECRET_KEY.replace("/", "\\/")]
    forms += [BASIC, "pa55/w0rd+x", "pa55\\/w0rd+x", quote("pa55/w0rd+x", safe="")]
    assert ctx.mask(f"bad password {'pa55/w0rd+x'}", ctx.secrets) == "bad password ****"
    for evidence in findings[0].evidence:
        for text in (evidence.curl, evidence.response, evidence.summary, findings[0].message):
            for form in forms:
                assert form not in text, (form, text)


async def test_target_terminal_escapes_are_shown_inert(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    async def ansi(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        body = b"\x1b[2J\x1b]0;pwned\x07fine\rhidden"
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    target = await serve(ansi)
    async with httpx.AsyncClient(timeout=5.0) as client:
        findings = await check_auth_enforced(context(target.url, client))
    [finding] = findings
    assert finding.outcome is Outcome.FAIL
    response = finding.evidence[0].response
    for control in ("\x1b", "\x07", "\r"):
        assert control not in response
    assert "\\x1b[2J" in response


async def test_discovery_cannot_point_the_scanner_at_its_own_network(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    async def internal(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        w.write(b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"keys":[]}')

    inside = await serve(internal)

    async def discovery(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        body = json.dumps({"jwks_uri": f"{inside.url}/latest/meta-data"}).encode()
        if target != "/.well-known/openid-configuration":
            body = b"{}"
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    target = await serve(discovery)
    async with httpx.AsyncClient(timeout=5.0) as client:
        ctx = context(target.url, client)
        assert await published_keys(ctx) == []
    assert inside.seen == []
    assert "/.well-known/jwks.json" in target.seen  # the target's own paths are still tried


async def test_unicode_and_endless_digits_in_limit_headers_are_findings_not_crashes(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    """``str.isdigit`` accepts ``²``, which ``int`` refuses, and ``int`` refuses more than 4300
    digits: either used to crash the rate-limit header check instead of failing it."""

    async def limited(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        w.write(
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: \xb2\r\n"
            b'ratelimit: "default";r=\xb2;t=' + b"9" * 5000 + b"\r\n"
            b'ratelimit-policy: "default";q=\xb2\r\ncontent-length: 0\r\n\r\n'
        )

    target = await serve(limited)
    async with httpx.AsyncClient(timeout=5.0) as client:
        ctx = context(target.url, client, aggressive=True)
        [finding] = await check_headers(ctx)
    assert finding.outcome is Outcome.FAIL, finding
    assert "neither seconds nor an HTTP date" in finding.message
    assert "lacks integer r= and t=" in finding.message
    assert "has no q > 0" in finding.message


async def test_an_error_body_cannot_make_the_leak_search_quadratic(
    serve: Callable[..., Awaitable[Target]],
) -> None:
    """An unbounded ``.+`` or ``(?:/segment)+`` before a literal took minutes on a megabyte of
    ``/home/home...`` or ``at at at``: the error-body check must conclude at once, and still
    find a leak that follows the padding within the part it searches."""
    padding = (b"/home" * 20_000 + b"at " * 20_000)[: LEAK_SCAN - 200]
    leak = b'\n  File "/srv/app/main.py", line 42\n'

    async def noisy(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        body = padding + leak + b"at x (" * 100_000
        w.write(b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    target = await serve(noisy)
    async with httpx.AsyncClient(timeout=5.0) as client:
        ctx = context(target.url, client)
        began = time.process_time()
        [finding] = await check_error_bodies(ctx)
        spent = time.process_time() - began
    assert finding.outcome is Outcome.FAIL
    assert all("/srv/app/main.py" in e.summary for e in finding.evidence)
    assert spent < 5.0, f"{spent:.1f} s of CPU to search three error bodies"
