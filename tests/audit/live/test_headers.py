"""live.cors, live.request-id, live.error-bodies and live.exposed-endpoints."""

from __future__ import annotations

from bastion.audit.checks.live_headers import (
    check_cors,
    check_error_bodies,
    check_exposed_endpoints,
    check_request_id,
)
from tests.audit.live.conftest import (
    ALICE,
    MakeContext,
    StartAPI,
    assert_fails,
    assert_masked,
    assert_passes,
)


async def test_cors_passes_when_only_the_allowlisted_origin_is_allowed(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_passes(await check_cors(make_context(api.url)))


async def test_cors_fires_when_any_origin_is_reflected_with_credentials(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("cors-reflect")
    finding = assert_fails(
        await check_cors(make_context(api.url)), "reflects Origin https://bastion-audit.example"
    )
    assert len(finding.evidence) == 3  # simple request, Origin: null, preflight
    assert "access-control-allow-credentials: true" in finding.evidence[0].response
    assert "-H 'Origin: null'" in finding.evidence[1].curl


async def test_request_id_passes_when_every_response_has_one(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_passes(await check_request_id(make_context(api.url, auth=[ALICE])))


async def test_request_id_fires_when_responses_have_none(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-request-id")
    finding = assert_fails(
        await check_request_id(make_context(api.url, auth=[ALICE])), "has no request id"
    )
    assert_masked(finding, ALICE[1])
    assert "X-API-Key: ****" in finding.evidence[0].curl


async def test_error_bodies_pass_with_generic_problems(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    finding = assert_passes(await check_error_bodies(make_context(api.url, auth=[ALICE])))
    assert finding.message == "3 error answers reveal nothing internal"


async def test_error_bodies_fire_on_stack_traces_and_file_paths(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("stack-traces", "5xx-on-bad-input")
    finding = assert_fails(
        await check_error_bodies(make_context(api.url, auth=[ALICE])), "stack trace", "file path"
    )
    # the malformed path parameter and the malformed JSON body both reach a traceback
    assert {e.location.split()[0] for e in finding.evidence} == {"GET", "POST"}
    assert all(e.response.startswith("HTTP/1.1 500") for e in finding.evidence)


async def test_error_bodies_fire_without_a_document(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    """Nothing but the target URL: the unknown path and a malformed body are still tried."""
    api = await start_api("stack-traces", "5xx-on-bad-input")
    finding = assert_fails(
        await check_error_bodies(make_context(api.url, auth=[ALICE], openapi=None)), "POST /"
    )
    assert "stack trace" in finding.evidence[0].summary


async def test_exposed_endpoints_pass_when_none_is_served(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_passes(await check_exposed_endpoints(make_context(api.url)))


async def test_exposed_endpoints_fire_on_open_metrics_and_env(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("open-metrics")
    finding = assert_fails(await check_exposed_endpoints(make_context(api.url)), "/metrics, /.env")
    assert [e.location for e in finding.evidence] == ["GET /metrics", "GET /.env"]
