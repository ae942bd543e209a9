"""bastion's own signing keys: generation, storage, scheduled rotation, JWKS, RFC 9068 tokens.

A key's life, all derived from two times it is born with (``activates_at``) and its successor's
``activates_at`` (its retirement)::

    pending ──activates_at──▶ current ──successor activates──▶ retired ──max lifetime──▶ gone
    (published, not signing)  (signs)                        (published: its tokens may be valid)

A scheduled rotation creates the next key ``publish_ahead`` before it starts signing, so that
verifiers that cache bastion's JWKS (for up to ``publish_ahead``) already know it. An on-demand
rotation (``bastion jwks rotate``) makes a key that signs at once; ``revoke_previous`` also drops
the older keys (a compromised key), which invalidates every token they signed.

Keys live in a :class:`~bastion.auth.jwt.keystore.SigningKeyStore` (see :mod:`.keystore`). Several
instances share one store: each checks the store's cheap ``version()`` every ``resync_interval``
(and at once when :meth:`SigningKeys.wake` is called, e.g. on a Redis notification), so a
rotation made anywhere signs and is published everywhere within about that interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.auth.jwt.jose import PrivateKey, VerificationKey, sign_compact
from bastion.auth.jwt.jwk import jwk_from_public_key, thumbprint
from bastion.auth.jwt.keyset import KeySet
from bastion.auth.jwt.keystore import (
    FileSigningKeyStore,
    SigningAlgorithm,
    SigningKeyStore,
    StoredSigningKey,
    generate_key,
    newest_kid,
)
from bastion.auth.jwt.settings import SigningSettings
from bastion.errors import StateError, describe

log = logging.getLogger("bastion.auth.jwt")

REGISTERED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "auth_time", "acr"}
)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token as issued. ``token`` is the bearer credential: never log it."""

    token: str = field(repr=False)
    jti: str
    kid: str
    issued_at: int
    expires_at: int
    scope: str

    @property
    def expires_in(self) -> int:
        return self.expires_at - self.issued_at


@dataclass(frozen=True, slots=True)
class _Live:
    """One loaded key with its derived times."""

    stored: StoredSigningKey
    private: PrivateKey = field(repr=False)
    public_jwk: Mapping[str, Any]
    verification: VerificationKey
    retired_at: float | None


class SigningKeys:
    """bastion's signing keys at work: the current key signs, the published ones verify.

    Also a :class:`~bastion.auth.jwt.keyset.KeySource` for bastion's own issuer: ``find`` looks
    among published keys, ``refetch`` reloads the store (another instance may have rotated).
    """

    def __init__(
        self,
        store: SigningKeyStore,
        *,
        issuer: str,
        algorithm: SigningAlgorithm = "EdDSA",
        token_lifetime: float = 300.0,
        max_token_lifetime: float = 3600.0,
        rotation_interval: float = 7 * 86400.0,
        publish_ahead: float = 600.0,
        leeway: float = 30.0,
        reload_cooldown: float = 5.0,
        maintenance_interval: float = 60.0,
        resync_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not 0 < token_lifetime <= max_token_lifetime:
            raise ValueError("token_lifetime must be positive and at most max_token_lifetime")
        if not 0 <= publish_ahead < rotation_interval:
            raise ValueError("publish_ahead must be shorter than rotation_interval")
        self.store = store
        self.issuer = issuer
        self.algorithm = algorithm
        self.token_lifetime = token_lifetime
        self.max_token_lifetime = max_token_lifetime
        self.rotation_interval = rotation_interval
        self.publish_ahead = publish_ahead
        self.leeway = leeway
        self.reload_cooldown = reload_cooldown
        self.maintenance_interval = maintenance_interval
        self.resync_interval = resync_interval
        self.on_change = on_change
        """Awaited after this instance changed the store (a rotation): e.g. a Redis
        announcement, so that other instances reload at once."""
        self._clock = clock
        self._sleep = sleep
        self._version: object = None
        self._woken = asyncio.Event()
        self._live: list[_Live] = []  # by activation
        self._keys = KeySet()
        self.revision = 0  # a plain attribute: the cached-token path reads it per request
        self._reloaded_at: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: SigningSettings,
        *,
        state_dir: Path,
        store: SigningKeyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SigningKeys:
        """The signing keys ``settings`` describe, in ``state_dir/key_dir`` unless ``store``."""
        return cls(
            store if store is not None else FileSigningKeyStore(state_dir / settings.key_dir),
            issuer=settings.issuer,
            algorithm=settings.algorithm,
            token_lifetime=settings.token_lifetime,
            max_token_lifetime=settings.max_token_lifetime,
            rotation_interval=settings.rotation_interval,
            publish_ahead=settings.publish_ahead,
            leeway=settings.leeway,
            resync_interval=settings.resync_interval,
            clock=clock,
        )

    # -- state -------------------------------------------------------------------------------

    def _apply(self, stored: Sequence[StoredSigningKey]) -> None:
        ordered = sorted(stored, key=lambda k: (k.activates_at, k.created_at, k.kid))
        previous = {live.stored.kid: live for live in self._live}
        live: list[_Live] = []
        for index, key in enumerate(ordered):
            retired_at = ordered[index + 1].activates_at if index + 1 < len(ordered) else None
            known = previous.get(key.kid)
            if known is not None:
                live.append(
                    _Live(
                        known.stored,
                        known.private,
                        known.public_jwk,
                        known.verification,
                        retired_at,
                    )
                )
                continue
            private = serialization.load_pem_private_key(key.private_pem, password=None)
            if not isinstance(private, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
                raise StateError(f"signing key {key.kid} is not an Ed25519 or EC key")
            jwk = jwk_from_public_key(private.public_key(), kid=key.kid, alg=key.alg)
            verification = VerificationKey(
                key.kid, frozenset((key.alg,)), private.public_key(), thumbprint(jwk)
            )
            live.append(_Live(key, private, MappingProxyType(jwk), verification, retired_at))
        if set(previous) - {entry.stored.kid for entry in live}:
            self.revision += 1
        self._live = live
        self._keys = KeySet.of(entry.verification for entry in live)

    async def _read(self) -> list[StoredSigningKey]:
        """Load the store and apply it; the version is read first, so a change racing the load
        is seen again by the next :meth:`resync`."""
        version = await self.store.version()
        stored = await self.store.load()
        self._apply(stored)
        self._version = version
        return stored

    def _published(self, now: float) -> list[_Live]:
        horizon = self.max_token_lifetime + self.leeway
        return [
            entry
            for entry in self._live
            if entry.retired_at is None or now < entry.retired_at + horizon
        ]

    def current(self, now: float | None = None) -> StoredSigningKey | None:
        """The key that signs at ``now`` (the last one activated)."""
        now = self._clock() if now is None else now
        active = [entry for entry in self._live if entry.stored.activates_at <= now]
        return active[-1].stored if active else None

    def stored_keys(self) -> list[StoredSigningKey]:
        return [entry.stored for entry in self._live]

    def retired_at(self, kid: str) -> float | None:
        for entry in self._live:
            if entry.stored.kid == kid:
                return entry.retired_at
        return None

    # -- JWKS --------------------------------------------------------------------------------

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """The JWK set to publish at ``/.well-known/jwks.json``: the current key first, then
        the pending one, then retired keys whose tokens can still be valid."""
        now = self._clock() if now is None else now
        published = self._published(now)
        current = self.current(now)
        first = [e for e in published if current is not None and e.stored.kid == current.kid]
        rest = sorted(
            (e for e in published if e not in first),
            key=lambda e: -e.stored.activates_at,
        )
        return {"keys": [dict(entry.public_jwk) for entry in first + rest]}

    def jwks_max_age(self) -> int:
        """A ``Cache-Control: max-age`` for the JWKS: short enough that a pending key is seen
        before it signs."""
        return max(0, int(self.publish_ahead // 2))

    # -- KeySource ---------------------------------------------------------------------------

    def find(self, kid: str | None, alg: str, now: float) -> VerificationKey | None:
        return self._keys.find(kid, alg)

    async def refetch(self) -> bool:
        """Reload the store (single-flight, at most once per ``reload_cooldown``)."""
        if self._inflight is None:
            last = self._reloaded_at
            if last is not None and self._clock() - last < self.reload_cooldown:
                return False
            self._inflight = asyncio.ensure_future(self._reload())
        return await asyncio.shield(self._inflight)

    async def _reload(self) -> bool:
        try:
            self._reloaded_at = self._clock()
            await self._read()
            return True
        finally:
            self._inflight = None

    async def resync(self) -> bool:
        """Reload if the store changed since it was last read (another instance rotated, or
        ``bastion jwks rotate``); whether it did. One cheap ``version()`` call otherwise."""
        if await self.store.version() == self._version:
            return False
        await self._read()
        return True

    def wake(self) -> None:
        """Check the store now rather than at the next ``resync_interval`` (a notification)."""
        self._woken.set()

    # -- rotation ----------------------------------------------------------------------------

    async def load(self, now: float | None = None) -> None:
        """Read the store and bring it up to schedule (first key, next key, pruning)."""
        self._reloaded_at = self._clock()
        await self._read()
        await self.maintain(now)

    async def read(self) -> None:
        """Load the store without changing it (``bastion jwks show``)."""
        await self._read()

    async def maintain(self, now: float | None = None) -> bool:
        """Do what the schedule says is due at ``now``; True if the store changed."""
        now = self._clock() if now is None else now
        changed = False
        for _ in range(3):  # another instance may win a race; reload and look again
            stored = await self._read()
            newest = newest_kid(stored)
            current = self.current(now)
            key: StoredSigningKey | None
            if current is None and not any(k.activates_at > now for k in stored):
                key = generate_key(self.algorithm, now=now, activates_at=now)
            else:
                key = self._next_key(now, current)
            if key is None:
                break
            if await self.store.append(key, after=newest):
                changed = True
                break
        stale = self._prunable(now)
        if stale:
            await self.store.delete(stale)
            changed = True
        if changed:
            await self._read()
            await self._changed()
        return changed

    def _next_key(self, now: float, current: StoredSigningKey | None) -> StoredSigningKey | None:
        if current is None or any(e.stored.activates_at > now for e in self._live):
            return None  # a pending key exists already
        due = current.activates_at + self.rotation_interval
        if now < due - self.publish_ahead:
            return None
        return generate_key(
            self.algorithm, now=now, activates_at=max(due, now + self.publish_ahead)
        )

    def _prunable(self, now: float) -> list[str]:
        horizon = self.max_token_lifetime + self.leeway
        return [
            entry.stored.kid
            for entry in self._live
            if entry.retired_at is not None and now >= entry.retired_at + horizon
        ]

    async def rotate(self, now: float | None = None, *, revoke_previous: bool = False) -> str:
        """Rotate now (``bastion jwks rotate``): a new key signs from ``now`` on. Older keys stay
        published while their tokens can be valid, unless ``revoke_previous`` drops them."""
        now = self._clock() if now is None else now
        for _ in range(5):
            stored = await self.store.load()
            key = generate_key(self.algorithm, now=now, activates_at=now)
            if await self.store.append(key, after=newest_kid(stored)):
                break
        else:
            raise StateError("signing key rotation lost the race five times in a row")
        # Pending keys would take over from the new one: retire them into the past.
        stale = [k.kid for k in stored if k.activates_at > now] if not revoke_previous else []
        if revoke_previous:
            stale = [k.kid for k in stored]
        if stale:
            await self.store.delete(stale)
        await self._read()
        await self._changed()
        return key.kid

    async def _changed(self) -> None:
        if self.on_change is not None:
            try:
                await self.on_change()
            except Exception as exc:  # an announcement is advisory: resync catches up anyway
                log.warning("signing key change not announced: %s", describe(exc))

    async def start(self) -> None:
        """Load, then in the background follow the store (every ``resync_interval``, or when
        woken) and keep the schedule (every ``maintenance_interval``). If the store cannot be
        read now, the error is raised but the background work starts anyway and keeps trying."""
        try:
            await self.load()
        finally:
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="signing-key-rotation")

    async def _run(self) -> None:
        maintained = self._clock()
        failing = False
        while True:
            await self._pause(self.resync_interval)
            try:
                await self.resync()
                due = self._clock() - maintained >= self.maintenance_interval
                if due or self.current() is None:
                    maintained = self._clock()
                    await self.maintain()
            except StateError as exc:  # keep the keys in memory; try again next round
                if not failing:
                    log.error("signing keys: the store cannot be read: %s", describe(exc))
                failing = True
            else:
                if failing:
                    log.warning("signing keys: the store can be read again")
                failing = False

    async def _pause(self, seconds: float) -> None:
        """``sleep(seconds)``, cut short by :meth:`wake`."""
        if self._woken.is_set():
            self._woken.clear()
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken):
                task.cancel()
            self._woken.clear()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- issuance ----------------------------------------------------------------------------

    def issue_access_token(
        self,
        *,
        subject: str,
        client_id: str,
        audience: str | Sequence[str],
        scopes: Iterable[str] = (),
        lifetime: float | None = None,
        now: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """An RFC 9068 access token (``typ: at+jwt``) signed by the current key.

        ``lifetime`` defaults to ``token_lifetime`` and is cut to ``max_token_lifetime``.
        ``extra_claims`` may not replace a registered claim.
        """
        now = self._clock() if now is None else now
        current = self.current(now)
        if current is None:
            raise StateError("no signing key is active; load() or rotate() first")
        entry = next(e for e in self._live if e.stored.kid == current.kid)
        lifetime = self.token_lifetime if lifetime is None else lifetime
        if lifetime <= 0:
            raise ValueError("token lifetime must be positive")
        lifetime = min(lifetime, self.max_token_lifetime)
        if not subject or not client_id:
            raise ValueError("subject and client_id must be non-empty")
        if extra_claims and REGISTERED_CLAIMS & set(extra_claims):
            raise ValueError("extra_claims may not replace a registered claim")
        audiences = [audience] if isinstance(audience, str) else list(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must name at least one resource")
        issued_at = int(now)
        expires_at = int(now + lifetime)
        jti = secrets.token_urlsafe(16)
        scope = " ".join(sorted(set(scopes)))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audiences[0] if len(audiences) == 1 else audiences,
            "exp": expires_at,
            "iat": issued_at,
            "jti": jti,
            "client_id": client_id,
        }
        if scope:
            claims["scope"] = scope
        if extra_claims:
            claims.update(extra_claims)
        header = {"typ": "at+jwt", "kid": current.kid}
        token = sign_compact(header, claims, entry.private, current.alg)
        return IssuedToken(token, jti, current.kid, issued_at, expires_at, scope)
