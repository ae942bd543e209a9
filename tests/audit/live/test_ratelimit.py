"""The rate-limit checks (--aggressive): a burst to the first 429, its headers, isolation
between credentials, spoofed forwarding headers, and the stricter login limit."""

from __future__ import annotations

import pytest

from bastion.audit.checks.live_ratelimit import (
    BURST,
    LOGIN_ATTEMPTS,
    check_enforced,
    check_headers,
    check_isolation,
    check_login,
    check_spoofing,
)
from bastion.audit.context import BudgetExhausted
from bastion.audit.model import Outcome
from tests.audit.live.conftest import (
    ALICE,
    BOB,
    MakeContext,
    StartAPI,
    assert_fails,
    assert_masked,
    assert_passes,
    only,
)


async def test_enforced_passes_and_stops_at_the_first_429(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    finding = assert_passes(await check_enforced(ctx))
    assert finding.message == "429 after 11 requests to GET /items"
    assert ctx.used == 11  # nothing more was sent


async def test_enforced_fires_without_a_limit(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-rate-limit")
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    finding = assert_fails(await check_enforced(ctx), f"{BURST} requests", "none answered 429")
    assert_masked(finding, ALICE[1])
    assert ctx.used == BURST


async def test_enforced_fires_on_a_503_instead_of_429(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("503-throttle", limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    assert_fails(await check_enforced(ctx), "answered 503 after 11 requests")


async def test_the_burst_respects_the_budget(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-rate-limit")
    ctx = make_context(api.url, auth=[ALICE], aggressive=True, budget=25)
    with pytest.raises(BudgetExhausted, match=r"budget \(25\) is spent"):
        await check_enforced(ctx)  # the runner reports it and skips the checks after it
    assert ctx.used == 25


async def test_headers_pass_on_a_complete_429(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    await check_enforced(ctx)
    used = ctx.used
    assert_passes(await check_headers(ctx))
    assert ctx.used == used  # the burst is shared


async def test_headers_fire_on_a_429_without_retry_after(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-retry-after", limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    finding = assert_fails(await check_headers(ctx), "no Retry-After")
    assert "ratelimit: " in finding.evidence[0].response.lower()


async def test_headers_fire_on_a_503_without_retry_after(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("503-throttle", limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    assert_fails(await check_headers(ctx), "the 503 answer", "no Retry-After")


async def test_isolation_passes_when_limits_are_per_credential(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(limit=10)
    ctx = make_context(api.url, auth=[ALICE], other_auth=[BOB], aggressive=True)
    assert_passes(await check_isolation(ctx))


async def test_isolation_fires_on_one_counter_for_everyone(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("global-limit", limit=10)
    ctx = make_context(api.url, auth=[ALICE], other_auth=[BOB], aggressive=True)
    finding = assert_fails(await check_isolation(ctx), "the second gets 429")
    assert_masked(finding, ALICE[1], BOB[1])


async def test_isolation_skips_without_a_second_identity(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    assert only(await check_isolation(ctx)).outcome is Outcome.SKIP
    assert ctx.used == 0


async def test_spoofing_passes_when_forwarding_headers_are_ignored(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    assert_passes(await check_spoofing(ctx))


async def test_spoofing_fires_when_x_forwarded_for_resets_the_limit(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("xff-limit", limit=10)
    ctx = make_context(api.url, auth=[ALICE], aggressive=True)
    finding = assert_fails(await check_spoofing(ctx), "spoofed X-Forwarded-For was served (200)")
    assert "-H 'X-Forwarded-For: 203.0.113.7'" in finding.evidence[0].curl


async def test_login_passes_with_a_strict_limit(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api(login_limit=5)
    finding = assert_passes(await check_login(make_context(api.url, aggressive=True)))
    assert finding.message == "429 on failed logins: POST /login after 6"


async def test_login_fires_without_one(start_api: StartAPI, make_context: MakeContext) -> None:
    api = await start_api("no-login-limit")
    finding = assert_fails(
        await check_login(make_context(api.url, aggressive=True)),
        f"{LOGIN_ATTEMPTS} failed attempts on POST /login",
    )
    evidence = finding.evidence[0]
    assert "wrong-password-bastion-audit" in evidence.curl
    assert evidence.response.startswith("HTTP/1.1 401")
