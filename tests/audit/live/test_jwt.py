"""The JWT checks with a working token from the weak API: tampering refused, guessable HMAC keys,
lifetimes and expiry."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson

from bastion.audit.checks.live_jwt import (
    check_alg_none,
    check_expiry,
    check_header_injection,
    check_key_confusion,
    check_signature,
    check_weak_secret,
)
from bastion.audit.checks.live_support import b64encode
from bastion.audit.model import Outcome
from tests.audit.live.conftest import (
    ALICE,
    MakeContext,
    Running,
    StartAPI,
    assert_fails,
    assert_passes,
    only,
)


def bearer(api: Running, **issue: int) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {api.api.issue('alice', **issue)}")]


def hs256(claims: dict[str, object], key: bytes) -> str:
    head = b64encode(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    signing_input = f"{head}.{b64encode(orjson.dumps(claims))}"
    return (
        signing_input
        + "."
        + b64encode(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    )


def assert_token_hidden(finding_curls: list[str], token: str) -> None:
    _, payload, signature = token.split(".")
    for curl in finding_curls:
        assert payload not in curl, curl
        assert signature not in curl, curl


async def test_tampering_is_refused_by_a_strict_verifier(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    ctx = make_context(api.url, auth=bearer(api), aggressive=True)
    for check in (check_alg_none, check_signature, check_header_injection, check_key_confusion):
        finding = assert_passes(await check(ctx))
        assert "forged tokens refused ([401])" in finding.message


async def test_alg_none_fires(start_api: StartAPI, make_context: MakeContext) -> None:
    api = await start_api("alg-none")
    auth = bearer(api)
    finding = assert_fails(
        await check_alg_none(make_context(api.url, auth=auth, aggressive=True)), "with alg none"
    )
    assert len(finding.evidence) == 4  # none, None, NONE, nOnE
    assert_token_hidden([e.curl for e in finding.evidence], auth[0][1].split()[1])
    assert "<payload of the --auth token>" in finding.evidence[0].curl


async def test_signature_fires_when_signatures_are_not_checked(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("no-signature-check")
    auth = bearer(api)
    finding = assert_fails(
        await check_signature(make_context(api.url, auth=auth, aggressive=True)),
        "one signature character changed",
        "without its signature",
        "altered sub claim",
    )
    assert_token_hidden([e.curl for e in finding.evidence], auth[0][1].split()[1])


async def test_header_injection_fires_when_an_embedded_jwk_is_trusted(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("trust-jwk")
    ctx = make_context(api.url, auth=bearer(api), aggressive=True)
    finding = assert_fails(await check_header_injection(ctx), "embedded as jwk")
    assert len(finding.evidence) == 1  # jku, x5u and the kid tricks were refused


async def test_key_confusion_fires_with_the_published_rsa_key(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("key-confusion")
    ctx = make_context(api.url, auth=bearer(api), aggressive=True)
    finding = assert_fails(await check_key_confusion(ctx), "public key weak-1 (form 1)")
    assert [e.summary.split(":")[0] for e in finding.evidence] == [
        "a token HMAC-signed with public key weak-1 (form 1) was accepted"
    ]


async def test_tampering_checks_skip_without_a_jwt_or_without_aggressive(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api("alg-none")
    with_key = make_context(api.url, auth=[ALICE], aggressive=True)
    assert "needs a working JWT" in only(await check_alg_none(with_key)).message
    safe = make_context(api.url, auth=bearer(api))
    assert only(await check_alg_none(safe)).outcome is Outcome.SKIP
    assert safe.used == 0


async def test_weak_secret_fires_offline(start_api: StartAPI, make_context: MakeContext) -> None:
    api = await start_api("weak-secret")
    ctx = make_context(api.url, auth=bearer(api))
    finding = assert_fails(await check_weak_secret(ctx), "HS256 signing key is a common secret")
    assert ctx.used == 0  # no request
    assert "secret" not in finding.evidence[0].summary.replace("common secret", "")


async def test_weak_secret_passes_for_a_random_key_and_skips_rsa(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    strong = hs256({"sub": "x", "exp": int(time.time()) + 60}, b"\x8f" * 32)
    assert_passes(
        await check_weak_secret(make_context(api.url, auth=[("Authorization", f"Bearer {strong}")]))
    )
    rs = only(await check_weak_secret(make_context(api.url, auth=bearer(api))))
    assert rs.outcome is Outcome.SKIP
    assert "RS256" in rs.message


async def test_expiry_passes_for_a_short_lived_token(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    assert_passes(await check_expiry(make_context(api.url, auth=bearer(api, lifetime=600))))


async def test_expiry_fires_on_long_lived_and_never_expiring_tokens(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    long = make_context(api.url, auth=bearer(api, lifetime=30 * 86400))
    finding = assert_fails(await check_expiry(long), "lives 720 hours")
    assert "-H 'Authorization: ****'" in finding.evidence[0].curl
    forever = hs256({"sub": "alice"}, b"\x8f" * 32)
    never = make_context(api.url, auth=[("Authorization", f"Bearer {forever}")])
    assert_fails(await check_expiry(never), "never expires")


async def test_expiry_forges_an_expired_token_when_the_key_is_guessed(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    lax = await start_api("weak-secret", "no-exp-check")
    finding = assert_fails(
        await check_expiry(make_context(lax.url, auth=bearer(lax), aggressive=True)),
        "accepts an expired token",
    )
    assert finding.evidence[0].response.startswith("HTTP/1.1 200")
    strict = await start_api("weak-secret")
    passed = assert_passes(
        await check_expiry(make_context(strict.url, auth=bearer(strict), aggressive=True))
    )
    assert passed.message == "exp is carried and enforced (expired token: 401)"


async def test_tampering_checks_skip_when_the_token_does_not_work(
    start_api: StartAPI, make_context: MakeContext
) -> None:
    api = await start_api()
    foreign = hs256({"sub": "alice", "exp": int(time.time()) + 60}, b"\x8f" * 32)
    ctx = make_context(api.url, auth=[("Authorization", f"Bearer {foreign}")], aggressive=True)
    finding = only(await check_alg_none(ctx))
    assert finding.outcome is Outcome.SKIP
    assert finding.message == "the --auth JWT was not accepted on GET /items (401)"
    assert only(await check_signature(ctx)).outcome is Outcome.SKIP
    assert ctx.used == 1  # the baseline is asked once for the family
