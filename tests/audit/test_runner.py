"""The runner against a real loopback target: which checks run, budgets, pacing, failures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from bastion.audit.checks import default_registry
from bastion.audit.context import LiveContext
from bastion.audit.model import (
    CheckInfo,
    Evidence,
    Finding,
    Kind,
    Outcome,
    Practice,
    Registry,
    Severity,
    failed,
)
from bastion.audit.runner import AuditPlan, TargetUnreachable, order, run
from tests.ports import free_port

from .conftest import Recorded
from .helpers import document

SECRET = "s3cr3t-token-value"


def info(check_id: str, kind: Kind, practice: Practice = Practice.AUTHENTICATION) -> CheckInfo:
    return CheckInfo(check_id, check_id, practice, Severity.HIGH, kind, "criterion")


def registry_with(*entries: tuple[CheckInfo, Any]) -> Registry:
    registry = Registry()
    for check, function in entries:
        if check.kind in (Kind.LIVE, Kind.AGGRESSIVE):
            registry.add_live(check, function)
        else:
            registry.add_static(check, function)
    return registry


async def test_a_raising_static_check_is_an_error_finding_and_the_rest_still_run() -> None:
    def broken(document: Mapping[str, Any]) -> Iterable[Finding]:
        raise KeyError("paths")

    registry = default_registry()
    registry.add_static(info("static.broken", Kind.STATIC), broken)
    result = await run(registry, AuditPlan(document=document("weak.yaml")))
    by_id = {f.check.id: f for f in result.findings}
    assert by_id["static.broken"].outcome is Outcome.ERROR
    assert "KeyError" in by_id["static.broken"].message
    assert by_id["static.security-on-writes"].outcome is Outcome.FAIL


async def test_without_a_document_static_checks_are_skipped_and_attestation_left_out() -> None:
    result = await run(default_registry(), AuditPlan())
    kinds = {f.check.kind for f in result.findings}
    assert kinds == {Kind.STATIC}
    assert {f.outcome for f in result.findings} == {Outcome.SKIP}


async def test_live_checks_share_one_budget_and_stop_when_it_is_spent(
    recording_target: Recorded,
) -> None:
    async def greedy(context: LiveContext) -> list[Finding]:
        while True:
            await context.request("GET", "/items")

    async def later(context: LiveContext) -> list[Finding]:
        raise AssertionError("must not run once the budget is spent")

    registry = registry_with(
        (info("live.greedy", Kind.LIVE), greedy), (info("live.later", Kind.LIVE), later)
    )
    result = await run(registry, AuditPlan(url=recording_target.url, budget=5))
    outcomes = {f.check.id: (f.outcome, f.message) for f in result.findings}
    assert outcomes["live.greedy"][0] is Outcome.ERROR
    assert "budget (5)" in outcomes["live.greedy"][1]
    assert outcomes["live.later"][0] is Outcome.SKIP
    assert result.requests == 5
    assert len(recording_target.arrivals) == 5  # the preflight and four of the greedy check


async def test_a_live_check_that_raises_is_an_error_with_the_credential_masked(
    recording_target: Recorded,
) -> None:
    async def leaky(context: LiveContext) -> list[Finding]:
        response = await context.request("GET", "/me", with_auth=True)
        raise RuntimeError(f"unexpected {response.status_code} for {SECRET}")

    registry = registry_with((info("live.leaky", Kind.LIVE), leaky))
    plan = AuditPlan(url=recording_target.url, auth=[("Authorization", f"Bearer {SECRET}")])
    result = await run(registry, plan)
    (finding,) = result.findings
    assert finding.outcome is Outcome.ERROR
    assert SECRET not in finding.message
    assert "****" in finding.message
    assert recording_target.arrivals[-1][3]["Authorization"] == f"Bearer {SECRET}"


async def test_aggressive_checks_run_only_when_asked(recording_target: Recorded) -> None:
    async def burst(context: LiveContext) -> list[Finding]:
        await context.request("GET", "/")
        return [failed(info("live.burst", Kind.AGGRESSIVE), "no 429", Evidence("x", "GET /"))]

    registry = registry_with((info("live.burst", Kind.AGGRESSIVE), burst))
    gentle = await run(registry, AuditPlan(url=recording_target.url))
    assert [f.outcome for f in gentle.findings] == [Outcome.SKIP]
    assert "--aggressive" in gentle.findings[0].message
    forceful = await run(registry, AuditPlan(url=recording_target.url, aggressive=True))
    assert [f.outcome for f in forceful.findings] == [Outcome.FAIL]


async def test_static_only_leaves_live_checks_out_and_sends_nothing(
    recording_target: Recorded,
) -> None:
    async def probe(context: LiveContext) -> list[Finding]:
        await context.request("GET", "/")
        return []

    registry = registry_with((info("live.probe", Kind.LIVE), probe))
    result = await run(registry, AuditPlan(url=recording_target.url, static_only=True))
    assert result.findings == []
    assert result.requests == 0
    assert recording_target.arrivals == []


async def test_a_live_check_with_nothing_to_report_passes(recording_target: Recorded) -> None:
    async def quiet(context: LiveContext) -> list[Finding]:
        await context.request("GET", "/")
        return []

    result = await run(registry_with((info("live.quiet", Kind.LIVE), quiet)),
                       AuditPlan(url=recording_target.url))  # fmt: skip
    assert [f.outcome for f in result.findings] == [Outcome.PASS]
    assert result.requests == 2


async def test_a_target_that_does_not_answer_is_unreachable() -> None:
    async def probe(context: LiveContext) -> list[Finding]:
        return []

    registry = registry_with((info("live.probe", Kind.LIVE), probe))
    with pytest.raises(TargetUnreachable, match="the connection failed"):
        await run(registry, AuditPlan(url=f"http://127.0.0.1:{free_port()}", timeout=2))


async def test_pacing_spaces_requests_out(recording_target: Recorded) -> None:
    async def three(context: LiveContext) -> list[Finding]:
        for _ in range(3):
            await context.request("GET", "/")
        return []

    registry = registry_with((info("live.three", Kind.LIVE), three))
    await run(registry, AuditPlan(url=recording_target.url, pacing=0.1))
    times = [arrival[0] for arrival in recording_target.arrivals]
    assert len(times) == 4
    assert times[-1] - times[0] >= 0.25  # three paced gaps of 0.1 s, less arrival jitter


async def test_progress_reports_every_planned_check_once() -> None:
    seen: list[tuple[int, int, str]] = []
    registry = default_registry()
    await run(
        registry,
        AuditPlan(document=document("strong.yaml")),
        lambda done, total, check, found: seen.append((done, total, check.id)),
    )
    static = [e.info.id for e in registry if e.info.kind is Kind.STATIC]
    assert [s[0] for s in seen] == list(range(1, len(static) + 1))
    assert {s[1] for s in seen} == {len(static)}
    assert sorted(s[2] for s in seen) == sorted(static)


def test_order_is_by_practice_then_kind_then_id_then_location() -> None:
    a = failed(info("static.z", Kind.STATIC, Practice.ENCRYPTION), "m", Evidence("e", "/b"))
    b = failed(info("static.z", Kind.STATIC, Practice.ENCRYPTION), "m", Evidence("e", "/a"))
    c = failed(info("live.a", Kind.LIVE, Practice.ENCRYPTION), "m", Evidence("e", "GET /"))
    d = failed(info("static.y", Kind.STATIC, Practice.AUTHENTICATION), "m")
    assert order([c, a, b, d]) == [d, b, a, c]


async def test_the_second_identity_is_masked_like_the_first(recording_target: Recorded) -> None:
    async def leaky(context: LiveContext) -> list[Finding]:
        raise RuntimeError("other identity other-s3cr3t was refused")

    registry = registry_with((info("live.leaky", Kind.LIVE), leaky))
    plan = AuditPlan(url=recording_target.url, other_auth=[("X-API-Key", "other-s3cr3t")])
    (finding,) = (await run(registry, plan)).findings
    assert "other-s3cr3t" not in finding.message
    assert "****" in finding.message


async def test_progress_announces_a_live_check_before_it_runs(recording_target: Recorded) -> None:
    seen: list[tuple[int, str, bool]] = []

    async def slow(context: LiveContext) -> list[Finding]:
        assert seen[-1] == (0, "live.slow", False)  # announced, not yet done
        await context.request("GET", "/")
        return []

    registry = registry_with((info("live.slow", Kind.LIVE), slow))
    await run(
        registry,
        AuditPlan(url=recording_target.url),
        lambda done, total, check, found: seen.append((done, check.id, found is not None)),
    )
    assert seen == [(0, "live.slow", False), (1, "live.slow", True)]
