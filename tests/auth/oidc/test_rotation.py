"""Rotation while traffic flows: zero valid tokens refused while the identity provider rotates its
keys and while bastion rotates its own (on demand and on schedule, across two instances).

Traffic is a loop of rounds; in each, several tokens are fetched from the real provider and
issued by bastion, concurrently, and verified at once; tokens from the previous round are
verified again with the cache emptied (so retired-but-published keys are exercised), and
bastion's tokens are also checked against nothing but its published JWKS, as a third-party
resource server would. The provider's clock is real (its tokens carry real times); bastion's
clock and the key cache's cooldown clock are fake and move a step per round.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bastion.auth.jwt import TokenVerifier, VerifiedToken
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwk import key_from_jwk
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.keyset import StaticKeys
from bastion.auth.jwt.keystore import FileSigningKeyStore
from bastion.auth.jwt.settings import SigningSettings
from bastion.auth.jwt.signing import SigningKeys
from bastion.auth.jwt.verifier import Issuer, own_issuer
from tests.auth.oidc.conftest import RESOURCES, Provider

BASTION = "https://gateway.bastion.test"
API = "https://api.bastion.test/orders"
ROUNDS = 48
STEP = 100.0  # bastion seconds per round
PROVIDER_ROTATES_EVERY = 8
BASTION_ROTATES_EVERY = 17  # on demand; the schedule (20 min) rotates 12 rounds after each


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as http:
        yield http


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def bastion_keys(directory: Path, clock: Clock) -> SigningKeys:
    return SigningKeys(
        FileSigningKeyStore(directory),
        issuer=BASTION,
        algorithm="EdDSA",
        token_lifetime=300.0,
        max_token_lifetime=900.0,
        rotation_interval=1200.0,
        publish_ahead=300.0,
        clock=clock,
    )


def published_only(keys: SigningKeys, now: float) -> TokenVerifier:
    """A verifier that knows bastion only through its JWKS (a third-party resource server)."""
    jwks = keys.jwks(now)["keys"]
    static = StaticKeys(key_from_jwk(jwk, frozenset({"EdDSA"})) for jwk in jwks)
    policy = ClaimsPolicy(BASTION, frozenset({API}), token_type="at+jwt")
    return TokenVerifier([Issuer(policy, frozenset({"EdDSA"}), static)])


async def test_rotation_while_traffic_flows_refuses_no_valid_token(
    own_provider: Provider, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    rng = random.Random(8725)
    cooldown_clock = Clock(0.0)
    provider_keys = IssuerKeys(
        own_provider.issuer,
        algorithms=frozenset(RESOURCES),
        client=client,
        allow_http=True,
        clock=cooldown_clock,
    )
    provider_policy = ClaimsPolicy(
        own_provider.issuer, frozenset(RESOURCES.values()), token_type="at+jwt"
    )
    bastion_clock = Clock(2_000_000_000.0)
    key_dir = tmp_path / "signing-keys"
    issuing = bastion_keys(key_dir, bastion_clock)  # the instance serving POST /oauth/token
    guarding = bastion_keys(key_dir, bastion_clock)  # another instance, verifying
    await issuing.load()
    await guarding.load()
    settings = SigningSettings(issuer=BASTION, audiences=[API], max_token_lifetime=900)
    verifier = TokenVerifier(
        [
            Issuer(provider_policy, frozenset(RESOURCES), provider_keys),
            own_issuer(settings, guarding),
        ]
    )
    assert await provider_keys.refresh()

    refused: list[str] = []
    verified = 0
    provider_rotations = bastion_rotations = 0
    bastion_kids: set[str] = set()
    provider_kids: set[str] = set()
    previous: list[tuple[str, str]] = []  # (who, token) from the round before

    async def provider_traffic() -> tuple[str, str]:
        token = await own_provider.atoken(client, rng.choice(list(RESOURCES)))
        return "provider", token

    async def bastion_traffic() -> tuple[str, str]:
        issued = issuing.issue_access_token(
            subject="svc-orders", client_id="svc-orders", audience=API, scopes=["read"]
        )
        return "bastion", issued.token

    async def check(who: str, token: str) -> None:
        nonlocal verified
        now = time.time() if who == "provider" else bastion_clock.now
        result = await verifier.verify(token, now)
        if isinstance(result, VerifiedToken):
            verified += 1
            (provider_kids if who == "provider" else bastion_kids).add(str(result.kid))
        else:
            refused.append(f"{who}: {result.code} {result.reason}")

    async def rotate_provider() -> None:
        nonlocal provider_rotations
        await asyncio.to_thread(own_provider.rotate)
        provider_rotations += 1

    for round_number in range(ROUNDS):
        background: list[asyncio.Task[None]] = []
        if round_number % PROVIDER_ROTATES_EVERY == PROVIDER_ROTATES_EVERY - 1:
            cooldown_clock.now += provider_keys.refetch_cooldown  # rotations are minutes apart
            background.append(asyncio.create_task(rotate_provider()))
        if round_number % BASTION_ROTATES_EVERY == BASTION_ROTATES_EVERY - 1:
            await issuing.rotate()
            bastion_rotations += 1
        traffic = [provider_traffic() for _ in range(3)] + [bastion_traffic() for _ in range(3)]
        fresh = await asyncio.gather(*traffic)
        await asyncio.gather(*(check(who, token) for who, token in fresh))
        await asyncio.gather(*background)

        # the previous round's tokens, verified again from scratch
        verifier.cache.clear()
        await asyncio.gather(*(check(who, token) for who, token in previous))
        outside = published_only(issuing, bastion_clock.now)
        for who, token in fresh + previous:
            if who == "bastion":
                result = outside.verify_nowait(token, bastion_clock.now)
                if not isinstance(result, VerifiedToken):
                    refused.append(f"bastion via JWKS: {result}")
        previous = list(fresh)

        bastion_clock.now += STEP
        await issuing.maintain()  # the schedule: next key published ahead, old keys pruned
        if round_number % 3 == 0:
            await guarding.maintain()

    assert refused == []
    assert verified == ROUNDS * 6 * 2 - 6
    assert provider_rotations == ROUNDS // PROVIDER_ROTATES_EVERY
    assert bastion_rotations == ROUNDS // BASTION_ROTATES_EVERY
    assert len(provider_kids) > provider_rotations  # tokens from every generation of keys
    # keys that signed: the first, each on-demand one, and at least two from the schedule
    assert len(bastion_kids) >= 1 + bastion_rotations + 2
    # one refetch per provider rotation at most, plus the first load
    assert provider_keys.fetches <= provider_rotations + 1
    # retired keys were pruned from the store once their tokens had expired
    assert len(issuing.stored_keys()) <= 4
