"""What every live check promises whatever the target: a description the docs are generated
from, one finding per run, an ``error`` (never an exception) when the target is gone, and no
request at all from an intrusive check without --aggressive."""

from __future__ import annotations

import pytest

from bastion.audit.checks import live_jwt_forge, live_support, live_tls_probe
from bastion.audit.model import Kind, Outcome, Registry
from tests.audit.live.conftest import ALICE, MakeContext, StartAPI, only
from tests.audit.live.test_gateway import live_registry
from tests.ports import free_port


def test_every_live_check_is_described() -> None:
    registry = live_registry()
    infos = registry.infos()
    assert len(infos) == 26
    for info in infos:
        assert info.id.startswith("live."), info.id
        assert info.kind in (Kind.LIVE, Kind.AGGRESSIVE)
        assert info.title
        assert info.criterion.endswith(".")
        assert info.rationale.endswith(".")
        assert info.references, info.id
        assert any(r.startswith(("OWASP", "ASVS", "RFC", "Mozilla")) for r in info.references)
    aggressive = {i.id for i in infos if i.kind is Kind.AGGRESSIVE}
    assert {"live.ratelimit-enforced", "live.jwt-alg-none", "live.input-injection"} <= aggressive
    assert "live.auth-enforced" not in aggressive


def test_helper_modules_register_nothing() -> None:
    registry = Registry()
    live_support.register(registry)
    live_tls_probe.register(registry)
    live_jwt_forge.register(registry)
    assert len(registry) == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_dead_target_gives_errors_not_exceptions(
    make_context: MakeContext, scheme: str
) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl"
    ctx = make_context(
        f"{scheme}://localhost:{free_port()}",
        auth=[ALICE, ("Authorization", f"Bearer {token}")],
        other_auth=[ALICE],
        aggressive=True,
    )
    for entry in live_registry():
        assert entry.live is not None
        finding = only(await entry.live(ctx))
        assert finding.outcome in (Outcome.ERROR, Outcome.SKIP, Outcome.PASS), finding
        if finding.outcome is Outcome.ERROR:
            assert "could not be reached" in finding.message


async def test_intrusive_checks_send_nothing_without_aggressive(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    ctx = make_context(api.url, auth=[ALICE], other_auth=[ALICE])
    for entry in live_registry():
        if entry.info.kind is Kind.AGGRESSIVE:
            assert entry.live is not None
            finding = only(await entry.live(ctx))
            assert finding.outcome is Outcome.SKIP
            assert finding.message == "needs --aggressive"
    assert ctx.used == 0


async def test_a_burst_of_refused_requests_is_not_a_rate_limit_test(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    from bastion.audit.checks.live_ratelimit import check_enforced

    api = await start_api("no-rate-limit")
    ctx = make_context(api.url, openapi=None, aggressive=True)  # GET /, secured, no credential
    finding = only(await check_enforced(ctx))
    assert finding.outcome is Outcome.SKIP
    assert "answered 401 to the first request" in finding.message
    assert ctx.used == 1
