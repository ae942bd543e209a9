"""bastion's signing keys: the schedule, JWKS publication, stores, and RFC 9068 issuance.

Every store implementation runs the same tests (memory, files under a state directory, and the
shared PostgreSQL, each test in a schema of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bastion.auth.jwt import (
    FileSigningKeyStore,
    MemorySigningKeyStore,
    SigningKeys,
    SigningKeyStore,
    SigningSettings,
    TokenError,
    TokenVerifier,
    VerifiedToken,
)
from bastion.auth.jwt.jose import parse_compact
from bastion.auth.jwt.verifier import own_issuer
from bastion.errors import StateError

ISS = "https://gateway.example.test"
API = "https://api.example.test"
T0 = 2_000_000_000.0
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[[Path], SigningKeyStore]
STORES: dict[str, StoreFactory] = {
    "memory": lambda _: MemorySigningKeyStore(),
    "file": lambda path: FileSigningKeyStore(path / "signing-keys"),
}


PG_PEPPER = b"signing-test-pepper-" + b"q" * 32


@pytest.fixture(params=[*STORES, "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SigningKeyStore]:
    if request.param != "postgres":
        yield STORES[request.param](tmp_path)
        return
    from bastion.store.signing_postgres import KeySealer, PostgresSigningKeyStore

    dsn, schema = request.getfixturevalue("postgres_dsn"), request.getfixturevalue("pg_schema")
    made = PostgresSigningKeyStore(dsn, KeySealer(PG_PEPPER), schema)
    yield made
    await made.close()


def make_keys(store: SigningKeyStore, clock: Clock, **options: float | str) -> SigningKeys:
    settings = {
        "issuer": ISS,
        "token_lifetime": 300.0,
        "max_token_lifetime": HOUR,
        "rotation_interval": 24 * HOUR,
        "publish_ahead": 600.0,
        "leeway": 30.0,
    }
    settings.update(options)
    return SigningKeys(store, clock=clock, **settings)  # type: ignore[arg-type]


def verifier_of(keys: SigningKeys) -> TokenVerifier:
    settings = SigningSettings(issuer=ISS, audiences=[API], max_token_lifetime=HOUR)
    return TokenVerifier([own_issuer(settings, keys)])


def kids(keys: SigningKeys, now: float) -> list[str]:
    return [jwk["kid"] for jwk in keys.jwks(now)["keys"]]


async def test_first_load_creates_a_key_that_signs_at_once(store: SigningKeyStore) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    current = keys.current()
    assert current is not None
    assert current.activates_at == T0
    assert kids(keys, T0) == [current.kid]
    assert len(await store.load()) == 1
    again = make_keys(store, clock)  # a restart reuses the stored key
    await again.load()
    assert again.current() == current


async def test_scheduled_rotation_publishes_ahead_then_switches(store: SigningKeyStore) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    first = keys.current()
    assert first is not None
    clock.now = T0 + 24 * HOUR - 601
    assert not await keys.maintain()
    clock.now = T0 + 24 * HOUR - 600
    assert await keys.maintain()
    pending = [k for k in keys.stored_keys() if k.kid != first.kid]
    assert len(pending) == 1
    assert pending[0].activates_at == T0 + 24 * HOUR
    assert keys.current() == first  # still signing with the first key
    assert kids(keys, clock.now) == [first.kid, pending[0].kid]  # both published, current first
    assert not await keys.maintain()  # one pending key at a time
    clock.now = T0 + 24 * HOUR
    assert keys.current() == pending[0]
    token = keys.issue_access_token(subject="s", client_id="c", audience=API)
    assert token.kid == pending[0].kid
    assert kids(keys, clock.now) == [pending[0].kid, first.kid]


async def test_retired_key_stays_published_while_its_tokens_can_be_valid(
    store: SigningKeyStore,
) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    first = keys.current()
    assert first is not None
    # the last token the first key signs, at the last moment, with the longest lifetime
    clock.now = T0 + 24 * HOUR - 600
    await keys.maintain()
    clock.now = T0 + 24 * HOUR - 1
    last = keys.issue_access_token(subject="s", client_id="c", audience=API, lifetime=HOUR)
    assert last.kid == first.kid
    retired_at = T0 + 24 * HOUR
    assert keys.retired_at(first.kid) == retired_at
    horizon = retired_at + HOUR + 30
    verifier = verifier_of(keys)
    for now in (retired_at, horizon - 31, horizon - 1):
        clock.now = now
        await keys.maintain()
        assert first.kid in kids(keys, now)
    assert isinstance(verifier.verify_nowait(last.token, last.expires_at + 29), VerifiedToken)
    clock.now = horizon
    assert await keys.maintain()  # pruned from the store
    assert first.kid not in kids(keys, horizon)
    assert first.kid not in [k.kid for k in await store.load()]


async def test_rotate_on_demand_signs_at_once_and_keeps_the_old_key_published(
    store: SigningKeyStore,
) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    old = keys.issue_access_token(subject="s", client_id="c", audience=API)
    clock.now += 60
    new_kid = await keys.rotate()
    current = keys.current()
    assert current is not None
    assert current.kid == new_kid
    new = keys.issue_access_token(subject="s", client_id="c", audience=API)
    assert new.kid == new_kid
    assert kids(keys, clock.now) == [new_kid, old.kid]
    verifier = verifier_of(keys)
    assert isinstance(verifier.verify_nowait(old.token, clock.now), VerifiedToken)
    assert isinstance(verifier.verify_nowait(new.token, clock.now), VerifiedToken)


async def test_rotate_on_demand_drops_a_pending_key(store: SigningKeyStore) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    clock.now = T0 + 24 * HOUR - 300
    await keys.maintain()
    assert len(keys.stored_keys()) == 2
    new_kid = await keys.rotate()
    clock.now = T0 + 48 * HOUR - 601  # the dropped pending key never takes over
    current = keys.current(clock.now)
    assert current is not None
    assert current.kid == new_kid


async def test_rotate_revoking_previous_keys_invalidates_their_tokens(
    store: SigningKeyStore,
) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    old = keys.issue_access_token(subject="s", client_id="c", audience=API)
    verifier = verifier_of(keys)
    assert isinstance(verifier.verify_nowait(old.token, clock.now), VerifiedToken)
    new_kid = await keys.rotate(revoke_previous=True)
    assert kids(keys, clock.now) == [new_kid]
    result = await verifier.verify(old.token, clock.now)  # the cached verification is redone
    assert isinstance(result, TokenError)
    assert result.reason == "kid does not name a key of the issuer"


async def test_concurrent_instances_rotate_once(store: SigningKeyStore) -> None:
    clock = Clock()
    instances = [make_keys(store, clock) for _ in range(4)]
    await instances[0].load()
    for keys in instances[1:]:
        await keys.load()
    assert len(await store.load()) == 1  # the first key was made once
    clock.now = T0 + 24 * HOUR - 300
    await asyncio.gather(*(keys.maintain() for keys in instances))
    assert len(await store.load()) == 2


async def test_another_instance_learns_a_new_key_on_first_sight(store: SigningKeyStore) -> None:
    clock = Clock()
    issuing, guarding = make_keys(store, clock), make_keys(store, clock)
    await issuing.load()
    await guarding.load()
    verifier = verifier_of(guarding)
    clock.now += 10
    await issuing.rotate()
    token = issuing.issue_access_token(subject="s", client_id="c", audience=API)
    assert verifier.verify_nowait(token.token, clock.now) is None  # unknown kid: reload needed
    assert isinstance(await verifier.verify(token.token, clock.now), VerifiedToken)


async def test_issued_token_follows_rfc9068(store: SigningKeyStore) -> None:
    clock = Clock()
    keys = make_keys(store, clock)
    await keys.load()
    issued = keys.issue_access_token(
        subject="svc-1", client_id="client-1", audience=API, scopes=["write", "read", "read"]
    )
    jws = parse_compact(issued.token)
    assert jws.header == {"typ": "at+jwt", "kid": issued.kid, "alg": "EdDSA"}
    assert dict(jws.claims) == {
        "iss": ISS,
        "sub": "svc-1",
        "aud": API,
        "exp": int(T0) + 300,
        "iat": int(T0),
        "jti": issued.jti,
        "client_id": "client-1",
        "scope": "read write",
    }
    assert issued.expires_in == 300
    assert issued.token not in repr(issued)
    result = verifier_of(keys).verify_nowait(issued.token, T0)
    assert isinstance(result, VerifiedToken)
    assert result.identity.consumer == "svc-1"
    assert result.identity.method == "jwt"
    assert result.identity.key_id == issued.jti
    assert result.identity.scopes == {"read", "write"}


async def test_lifetime_never_exceeds_the_maximum(store: SigningKeyStore) -> None:
    keys = make_keys(store, Clock())
    await keys.load()
    assert (
        keys.issue_access_token(subject="s", client_id="c", audience=API, lifetime=60).expires_in
        == 60
    )
    capped = keys.issue_access_token(subject="s", client_id="c", audience=API, lifetime=10 * HOUR)
    assert capped.expires_in == HOUR
    with pytest.raises(ValueError, match="positive"):
        keys.issue_access_token(subject="s", client_id="c", audience=API, lifetime=0)


async def test_issuance_refuses_bad_requests(store: SigningKeyStore) -> None:
    keys = make_keys(store, Clock())
    with pytest.raises(StateError, match="no signing key"):
        keys.issue_access_token(subject="s", client_id="c", audience=API)
    await keys.load()
    with pytest.raises(ValueError, match="registered claim"):
        keys.issue_access_token(subject="s", client_id="c", audience=API, extra_claims={"exp": 9})
    with pytest.raises(ValueError, match="non-empty"):
        keys.issue_access_token(subject="", client_id="c", audience=API)
    with pytest.raises(ValueError, match="audience"):
        keys.issue_access_token(subject="s", client_id="c", audience=[])
    several = keys.issue_access_token(
        subject="s", client_id="c", audience=[API, "b"], extra_claims={"tier": "gold"}
    )
    claims = parse_compact(several.token).claims
    assert claims["aud"] == [API, "b"]
    assert claims["tier"] == "gold"
    assert "scope" not in claims


async def test_es256_keys(store: SigningKeyStore) -> None:
    keys = make_keys(store, Clock(), algorithm="ES256")
    await keys.load()
    issued = keys.issue_access_token(subject="s", client_id="c", audience=API)
    assert parse_compact(issued.token).alg == "ES256"
    assert keys.jwks(T0)["keys"][0]["crv"] == "P-256"
    settings = SigningSettings(issuer=ISS, audiences=[API], algorithm="ES256")
    verifier = TokenVerifier([own_issuer(settings, keys)])
    assert isinstance(verifier.verify_nowait(issued.token, T0), VerifiedToken)


async def test_jwks_holds_public_keys_only(store: SigningKeyStore) -> None:
    keys = make_keys(store, Clock())
    await keys.load()
    (jwk,) = keys.jwks(T0)["keys"]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert keys.jwks_max_age() == 300


async def test_background_schedule_runs_with_an_injected_sleep(store: SigningKeyStore) -> None:
    clock = Clock()
    slept: asyncio.Queue[float] = asyncio.Queue()
    go = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await slept.put(seconds)
        await go.wait()
        go.clear()

    keys = SigningKeys(store, issuer=ISS, clock=clock, sleep=sleep, rotation_interval=24 * HOUR)
    await keys.start()
    try:
        assert await slept.get() == keys.resync_interval
        clock.now = T0 + 24 * HOUR  # past the maintenance interval and the rotation's lead
        go.set()
        assert await slept.get() == keys.resync_interval
        current = keys.current(T0 + 24 * HOUR + 600)
        assert current is not None
        assert current.activates_at == T0 + 24 * HOUR + 600
    finally:
        await keys.aclose()


async def test_an_instance_follows_another_instances_rotation_at_its_next_resync(
    store: SigningKeyStore,
) -> None:
    clock = Clock()
    first, second = make_keys(store, clock), make_keys(store, clock)
    await first.load()
    await second.load()
    assert first.current() == second.current()
    assert not await second.resync()  # nothing changed: one version() call
    clock.now += 60
    kid = await first.rotate()
    assert await second.resync()
    current = second.current()
    assert current is not None
    assert current.kid == kid
    assert kid in {jwk["kid"] for jwk in second.jwks()["keys"]}


async def test_wake_cuts_the_resync_pause_short(store: SigningKeyStore) -> None:
    clock = Clock()
    slept: asyncio.Queue[float] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        await slept.put(seconds)
        await asyncio.Event().wait()  # never ends by itself: only wake() moves on

    other = make_keys(store, clock)
    await other.load()
    keys = SigningKeys(store, issuer=ISS, clock=clock, sleep=sleep)
    await keys.start()
    try:
        await slept.get()
        clock.now += 60
        kid = await other.rotate()
        keys.wake()
        await slept.get()  # the loop went round: resync ran
        current = keys.current()
        assert current is not None
        assert current.kid == kid
    finally:
        await keys.aclose()


async def test_on_change_is_awaited_after_a_rotation(store: SigningKeyStore) -> None:
    calls: list[str] = []

    async def announce() -> None:
        calls.append("changed")

    keys = make_keys(store, Clock())
    keys.on_change = announce
    await keys.load()  # the first key: a change too
    await keys.rotate()
    assert calls == ["changed", "changed"]


async def test_file_store_keeps_keys_private(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "signing-keys"
    keys = make_keys(FileSigningKeyStore(directory), Clock())
    await keys.load()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (path,) = directory.glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in json.loads(path.read_text())["private_key"]
    current = keys.current()
    assert current is not None
    assert "PRIVATE" not in repr(current)


async def test_file_store_refuses_keys_readable_by_others(tmp_path: Path) -> None:
    directory = tmp_path / "signing-keys"
    await make_keys(FileSigningKeyStore(directory), Clock()).load()
    (path,) = directory.glob("*.json")
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="accessible to others"):
        await make_keys(FileSigningKeyStore(directory), Clock()).load()


async def test_file_store_refuses_a_renamed_or_foreign_file(tmp_path: Path) -> None:
    directory = tmp_path / "signing-keys"
    await make_keys(FileSigningKeyStore(directory), Clock()).load()
    (path,) = directory.glob("*.json")
    path.rename(directory / "abcdefghijkl.json")
    with pytest.raises(StateError, match="does not match"):
        await FileSigningKeyStore(directory).load()
    (directory / "abcdefghijkl.json").write_text("{}")
    os.chmod(directory / "abcdefghijkl.json", 0o600)
    with pytest.raises(StateError, match="not a bastion key"):
        await FileSigningKeyStore(directory).load()


def test_settings_build_a_file_store_under_state_dir(tmp_path: Path) -> None:
    settings = SigningSettings(issuer=ISS, audiences=[API], key_dir="keys/signing")
    keys = SigningKeys.from_settings(settings, state_dir=tmp_path)
    assert isinstance(keys.store, FileSigningKeyStore)
    assert keys.store.directory == tmp_path / "keys" / "signing"
    assert keys.max_token_lifetime == settings.max_token_lifetime
