"""live.auth-enforced, live.credential-in-query and live.www-authenticate against the weak API."""

from __future__ import annotations

from bastion.audit.checks.live_auth import (
    check_auth_enforced,
    check_credential_in_query,
    check_www_authenticate,
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


async def test_auth_enforced_passes_on_every_secured_operation(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    finding = assert_passes(await check_auth_enforced(make_context(api.url)))
    # GET /items, POST /items, GET /items/{id}: DELETE is held back without --aggressive
    assert "3 secured operations" in finding.message
    assert "1 DELETE operations need --aggressive" in finding.message


async def test_auth_enforced_fires_when_operations_serve_anyone(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-auth")
    finding = assert_fails(await check_auth_enforced(make_context(api.url)), "was served")
    locations = {e.location for e in finding.evidence}
    # GET /items/1 answers 404 (no such item) and POST /items without a body 400: any 4xx
    # counts as refused, to stay clear of false alarms
    assert locations == {"GET /items"}
    assert all(e.curl.startswith("curl -i -X ") for e in finding.evidence)


async def test_auth_enforced_fires_on_a_5xx_for_a_malformed_credential(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("auth-crash")
    finding = assert_fails(
        await check_auth_enforced(make_context(api.url)), "crashed (5xx) with a malformed"
    )
    assert "Bearer !!not-a-credential!!" in finding.evidence[0].curl


async def test_auth_enforced_without_a_document_probes_the_target_url(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    strong, weak = await start_api(), await start_api("no-auth")
    assert_passes(await check_auth_enforced(make_context(strong.url, openapi=None)))
    assert_fails(await check_auth_enforced(make_context(weak.url, openapi=None)), "GET /")


async def test_credential_in_query_passes_when_the_query_is_ignored(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    finding = assert_passes(await check_credential_in_query(make_context(api.url, auth=[ALICE])))
    assert "refused in 6 query parameters" in finding.message


async def test_credential_in_query_fires_and_masks_the_key(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("query-key")
    ctx = make_context(api.url, auth=[ALICE])
    finding = assert_fails(await check_credential_in_query(ctx), "accepted as ?api_key=")
    evidence = finding.evidence[0]
    assert "api_key=****" in evidence.curl
    assert_masked(finding, ALICE[1])


async def test_credential_in_query_fires_for_a_bearer_token_too(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("query-key")
    token = api.api.issue()
    ctx = make_context(api.url, auth=[("Authorization", f"Bearer {token}")])
    finding = assert_fails(await check_credential_in_query(ctx), "as ?access_token=")
    assert_masked(finding, token)


async def test_credential_in_query_skips_without_a_working_credential(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert only(await check_credential_in_query(make_context(api.url))).outcome is Outcome.SKIP
    wrong = make_context(api.url, auth=[("X-API-Key", "k-nobody")])
    skipped = only(await check_credential_in_query(wrong))
    assert skipped.outcome is Outcome.SKIP
    assert "was not accepted" in skipped.message
    assert "k-nobody" not in skipped.message


async def test_www_authenticate_passes_when_every_401_names_the_scheme(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    ctx = make_context(api.url)
    await check_auth_enforced(ctx)  # shares its 401 answers
    finding = assert_passes(await check_www_authenticate(ctx))
    assert "all 12 401 answers" in finding.message


async def test_www_authenticate_fires_on_a_bare_401(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-www-authenticate")
    finding = assert_fails(
        await check_www_authenticate(make_context(api.url)), "without WWW-Authenticate"
    )
    assert finding.evidence[0].response.startswith("HTTP/1.1 401")
