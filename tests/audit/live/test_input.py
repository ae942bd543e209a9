"""The input checks (--aggressive): schema violations, undeclared properties, injection probes
(error-based, and time-based against PostgreSQL's pg_sleep, confirmed before reporting)."""

from __future__ import annotations

from bastion.audit.checks.live_input import (
    PROBE_NAME,
    check_injection,
    check_schema,
    check_undeclared,
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


async def test_schema_passes_when_every_violation_is_refused(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    finding = assert_passes(
        await check_schema(make_context(api.url, auth=[ALICE], aggressive=True))
    )
    # the login endpoint's own limit (5 attempts) cuts its probing short, which is said
    assert finding.message == (
        "16 invalid inputs on 3 operations refused with 4xx "
        "(1 rate-limited before probed fully: POST /login)"
    )


async def test_schema_fires_when_invalid_input_is_accepted(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-validation")
    finding = assert_fails(
        await check_schema(make_context(api.url, auth=[ALICE], aggressive=True)),
        "a string over its maxLength (name) was accepted: 201",
        "a number over its maximum (price) was accepted: 201",
        "?q: a string over its maxLength was accepted: 200",
    )
    assert_masked(finding, ALICE[1])
    assert api.api.items == {}  # accepted inputs created items; the audit deleted them


async def test_schema_fires_when_invalid_input_crashes_the_handler(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("5xx-on-bad-input")
    assert_fails(
        await check_schema(make_context(api.url, auth=[ALICE], aggressive=True)),
        "required property name missing crashed the handler: 500",
        "?limit: a string where a number is declared crashed the handler: 500",
    )


async def test_input_checks_skip_without_aggressive(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-validation", "keeps-undeclared", "sql-errors")
    ctx = make_context(api.url, auth=[ALICE])
    for check in (check_schema, check_undeclared, check_injection):
        assert only(await check(ctx)).outcome is Outcome.SKIP
    assert ctx.used == 0


async def test_undeclared_passes_when_extra_properties_are_refused(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_passes(await check_undeclared(make_context(api.url, auth=[ALICE], aggressive=True)))
    assert api.api.items == {}


async def test_undeclared_fires_when_extra_properties_are_kept(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("keeps-undeclared")
    assert_fails(
        await check_undeclared(make_context(api.url, auth=[ALICE], aggressive=True)),
        f"{PROBE_NAME} was kept",
    )
    assert api.api.items == {}  # the audit deleted what it created (DELETE /items/{id})


async def test_injection_passes_on_parameterised_queries(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    finding = assert_passes(
        await check_injection(make_context(api.url, auth=[ALICE], aggressive=True))
    )
    assert "GET /items ?q" in finding.message


async def test_injection_fires_on_a_database_error(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("sql-errors")
    finding = assert_fails(
        await check_injection(make_context(api.url, auth=[ALICE], aggressive=True)),
        "?q with \"'\" produced a database error: 'unterminated quoted string'",
    )
    assert "q=%27" in finding.evidence[0].curl


async def test_injection_fires_on_a_confirmed_delay_with_errors_hidden(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("sql-injection")
    finding = assert_fails(
        await check_injection(make_context(api.url, auth=[ALICE], aggressive=True)),
        "pg_sleep(2)",
        "delayed the answer by",
        "and again by",
    )
    assert len(finding.evidence) == 1


async def test_injection_ignores_a_delay_that_does_not_repeat(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    """A server that was slow once (the first pg_sleep probe) is not reported: the probe is
    sent again after a fast control, and that time it is fast."""
    api = await start_api("slow-once")
    assert_passes(await check_injection(make_context(api.url, auth=[ALICE], aggressive=True)))
    assert api.api._hiccup


async def test_a_rate_limit_met_on_the_way_makes_the_check_inconclusive(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    """A 429 is not a refusal by validation: counted as one, the check would pass an API whose
    validation it never reached. A long Retry-After (60 s here) is not waited out, and an
    operation cut short is named; when none could be probed the check is an error."""
    api = await start_api(limit=2, login_limit=2)
    finding = only(await check_schema(make_context(api.url, auth=[ALICE], aggressive=True)))
    assert finding.outcome is Outcome.ERROR
    assert finding.message == (
        "no operation could be probed (3 rate-limited before probed fully: "
        "GET /items, POST /items, POST /login)"
    )
