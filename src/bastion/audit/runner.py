"""Runs the checks of a registry against one target and returns every finding, ordered.

Which checks run is decided by what the operator gave: static checks need the OpenAPI document,
live checks a URL (and not ``--static``), aggressive ones ``--aggressive`` as well, attestation
checks ``--gateway-config``. A check that raises becomes an ``error`` finding (an audit never
crashes on one bad check); a spent request budget turns the remaining live checks into skips.
Live checks run one after another through one :class:`LiveContext`, so pacing holds and the same
target gives the same findings in the same order.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bastion.audit.context import BudgetExhausted, LiveContext
from bastion.audit.model import (
    CheckInfo,
    Finding,
    Kind,
    Outcome,
    Practice,
    Registered,
    Registry,
    errored,
    passed,
    skipped,
)
from bastion.config.models import BastionConfig

Progress = Callable[[int, int, CheckInfo, Sequence[Finding] | None], None]
"""Called after each check: (checks done, checks planned, the check, its findings); and before
each live check, which may take a while, with ``None`` for findings."""

_PRACTICES = list(Practice)
_KINDS = list(Kind)


class TargetUnreachable(Exception):
    """The target did not answer at all (connection refused, DNS, TLS handshake): exit 2."""


@dataclass(frozen=True)
class AuditPlan:
    """What the operator asked for; the runner decides from it which checks apply."""

    url: str | None = None
    document: Mapping[str, Any] | None = None
    config: BastionConfig | None = None
    auth: Sequence[tuple[str, str]] = ()
    profile: str = "api"
    aggressive: bool = False
    static_only: bool = False
    budget: int = 500
    pacing: float = 0.0
    verify: bool | ssl.SSLContext = True
    timeout: float = 10.0
    other_auth: Sequence[tuple[str, str]] = ()  # a second identity (per-credential checks)
    plain_http_url: str | None = None  # where plain HTTP is tried (default: port 80)

    @property
    def secrets(self) -> list[str]:
        return [value for _, value in (*self.auth, *self.other_auth) if value]


def order(findings: Iterable[Finding]) -> list[Finding]:
    """The report order: practice, then kind, then check id, then location and message."""

    def key(f: Finding) -> tuple[int, int, str, str, str]:
        where = min((e.location for e in f.evidence), default="")
        return (
            _PRACTICES.index(f.check.practice),
            _KINDS.index(f.check.kind),
            f.check.id,
            where,
            f.message,
        )

    return sorted(findings, key=key)


def _selected(entry: Registered, plan: AuditPlan) -> Finding | bool | None:
    """True: run it; a finding: report that instead (a skip); None: leave it out entirely."""
    info = entry.info
    if entry.attest is not None:
        return True if plan.config is not None else None
    if entry.static is not None:
        if plan.document is None:
            return skipped(info, "no OpenAPI document was given (--openapi)")
        return True
    if plan.static_only or plan.url is None:
        return None
    if info.kind is Kind.AGGRESSIVE and not plan.aggressive:
        return skipped(info, "intrusive check; runs only with --aggressive")
    return True


def _complete(info: CheckInfo, found: list[Finding]) -> list[Finding]:
    return found or [passed(info, "no issue found")]


def _crash(info: CheckInfo, exc: BaseException, secrets: Sequence[str]) -> Finding:
    text = LiveContext.mask(f"{exc.__class__.__name__}: {exc}", secrets)
    return errored(info, f"the check could not complete ({text[:300]})")


@dataclass(frozen=True)
class RunResult:
    findings: list[Finding]  # ordered, see order()
    requests: int  # live requests sent (counted against the budget)


async def run(registry: Registry, plan: AuditPlan, progress: Progress | None = None) -> RunResult:
    """Every finding of every applicable check, ordered (see :func:`order`)."""
    decided = [(entry, _selected(entry, plan)) for entry in registry]
    planned = [(entry, choice) for entry, choice in decided if choice is not None]
    total = len(planned)
    secrets = plan.secrets
    findings: list[Finding] = []
    done = 0

    def record(info: CheckInfo, found: list[Finding]) -> None:
        nonlocal done
        done += 1
        findings.extend(found)
        if progress is not None:
            progress(done, total, info, found)

    def start(info: CheckInfo) -> None:
        if progress is not None:
            progress(done, total, info, None)

    live: list[Registered] = []
    for entry, choice in planned:
        info = entry.info
        if isinstance(choice, Finding):
            record(info, [choice])
        elif entry.live is not None:
            live.append(entry)
        else:
            try:
                if entry.static is not None and plan.document is not None:
                    record(info, _complete(info, list(entry.static(plan.document))))
                elif entry.attest is not None and plan.config is not None:
                    record(info, _complete(info, list(entry.attest(plan.config))))
            except Exception as exc:  # a broken check is a finding, never a crash
                record(info, [_crash(info, exc, secrets)])
    requests = 0
    if plan.url is not None and not plan.static_only:  # a URL is always reached once
        requests = await _run_live(live, plan, record, start, secrets)
    return RunResult(order(findings), requests)


async def _run_live(
    entries: list[Registered],
    plan: AuditPlan,
    record: Callable[[CheckInfo, list[Finding]], None],
    start: Callable[[CheckInfo], None],
    secrets: Sequence[str],
) -> int:
    """Runs the live checks in registry order; returns the requests sent."""
    url = plan.url or ""
    timeout = httpx.Timeout(plan.timeout)
    async with httpx.AsyncClient(
        verify=plan.verify, timeout=timeout, follow_redirects=False
    ) as client:
        optional: dict[str, Any] = {
            "other_auth": tuple(plan.other_auth),
            "verify": plan.verify,
            "plain_http_url": plan.plain_http_url,
        }
        known = {f.name for f in dataclasses.fields(LiveContext)}
        context = LiveContext(
            base_url=url,
            client=client,
            auth=tuple(plan.auth),
            document=plan.document,
            profile=plan.profile,
            aggressive=plan.aggressive,
            budget=plan.budget,
            pacing=plan.pacing,
            # what live families added to the context, where this version has it
            **{name: value for name, value in optional.items() if name in known},
        )
        await _preflight(context, secrets)
        spent = False
        for entry in entries:
            info = entry.info
            if spent:
                record(info, [skipped(info, f"the request budget ({plan.budget}) was spent")])
                continue
            check = entry.live
            if check is None:
                continue
            start(info)
            try:
                record(info, _complete(info, await check(context)))
            except BudgetExhausted:
                spent = True
                record(
                    info, [errored(info, f"the request budget ({plan.budget}) ran out mid-check")]
                )
            except Exception as exc:  # a broken check is a finding, never a crash
                record(info, [_crash(info, exc, secrets)])
        return context.used


async def _preflight(context: LiveContext, secrets: Sequence[str]) -> None:
    """One request to the base URL: a target that does not answer at all is a usage error."""
    try:
        await context.request("GET", "/")
    except BudgetExhausted:
        return
    except httpx.TransportError as exc:
        reason = LiveContext.mask(str(exc) or exc.__class__.__name__, secrets)
        raise TargetUnreachable(
            f"{context.base_url}: the connection failed ({reason}); expected a reachable API"
        ) from None


def outcome_of(findings: Sequence[Finding]) -> Outcome:
    """One check's overall outcome: fail beats error beats pass beats skip."""
    outcomes = {f.outcome for f in findings}
    for outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.PASS):
        if outcome in outcomes:
            return outcome
    return Outcome.SKIP
