"""The token verifier: one call from a bearer token to a :class:`VerifiedToken` or a refusal.

Order of work, cheapest and least trusting first: size cap; cache hit (re-checked against
revocation and key revision); strict parse (:mod:`.jose`); issuer chosen by ``iss``, and from
then on only that issuer's algorithm allowlist and keys; signature; claims policy; revocation.
A cached hit costs a hash and a dictionary lookup, no signature.

``verify_nowait`` never waits: it answers ``None`` when only a key refetch can tell (a ``kid``
not seen yet), and the caller then awaits ``verify``. A guard stays synchronous on the hot path::

    result = verifier.verify_nowait(token)
    if result is None:
        return verifier.verify(token)  # awaitable; the chain awaits it
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType

import httpx

from bastion.auth.jwt.cache import (
    MemoryRevocations,
    NoRevocations,
    Revocations,
    TokenCache,
    VerifiedToken,
    token_key,
    token_parts,
)
from bastion.auth.jwt.claims import ClaimsPolicy, check_claims, scopes_of
from bastion.auth.jwt.errors import (
    INVALID_TOKEN,
    REVOKED_TOKEN,
    TokenError,
    TokenRejected,
    reject,
)
from bastion.auth.jwt.jose import (
    ALGORITHMS,
    DEFAULT_LIMITS,
    JWS,
    Limits,
    VerificationKey,
    parse_compact,
    secret_fingerprint,
    verify_signature,
)
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.keyset import KeySource, StaticKeys
from bastion.auth.jwt.settings import IssuerSettings, SigningSettings, TokenSettings
from bastion.auth.jwt.signing import SigningKeys
from bastion.pipeline.identity import Identity

__all__ = ["Issuer", "TokenVerifier", "build_issuer", "build_verifier", "own_issuer"]


@dataclass(frozen=True, slots=True)
class Issuer:
    """One trusted issuer: its claims policy, its allowed algorithms, where its keys come from,
    the ``Identity.method`` its tokens prove (``oidc`` for providers, ``jwt`` for bastion), and
    the claim that names the caller's rate-limit tier (bastion's own tokens only: ``tier``)."""

    policy: ClaimsPolicy
    algorithms: frozenset[str]
    keys: KeySource
    method: str = "oidc"
    tier_claim: str | None = None

    @property
    def name(self) -> str:
        return self.policy.issuer


class TokenVerifier:
    """Verifies bearer JWTs from any configured issuer (see the module docstring)."""

    def __init__(
        self,
        issuers: Iterable[Issuer],
        *,
        cache: TokenCache | None = None,
        revocations: Revocations | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuers: dict[str, Issuer] = {}
        for issuer in issuers:
            if issuer.name in self.issuers:
                raise ValueError("each issuer may be configured once")
            unknown = issuer.algorithms - set(ALGORITHMS)
            if unknown:
                raise ValueError("issuer algorithms must be JWS algorithms bastion implements")
            self.issuers[issuer.name] = issuer
        self.cache = TokenCache() if cache is None else cache
        self.revocations: Revocations = NoRevocations() if revocations is None else revocations
        self.limits = limits
        self._clock = clock
        self.clock = clock  # read by guards that look in the cache first (BearerTokenGuard)

    def verify_nowait(
        self, token: str | bytes, now: float | None = None
    ) -> VerifiedToken | TokenError | None:
        """The answer without waiting, or ``None`` when a key refetch is needed first.

        ``token`` may be the header's bytes: a cached hit then costs no decoding at all (the
        token is decoded, as Latin-1 like every header value, only when it must be parsed)."""
        if now is None:
            now = self._clock()
        if not isinstance(token, str | bytes):
            return TokenError(INVALID_TOKEN, "token is not a string")
        if len(token) > self.limits.max_token_bytes:
            return TokenError(INVALID_TOKEN, "token exceeds the size limit")
        key, signed = token_parts(token)
        hit = self.cache.get(key, signed, now)
        if hit is not None:
            if hit.revision == self.issuers[hit.issuer].keys.revision:
                if self.revocations.is_revoked(hit):
                    return TokenError(REVOKED_TOKEN, "token was revoked")
                return hit
            self.cache.discard(key)
        try:
            jws = parse_compact(_text(token), self.limits)
            issuer = self._issuer_of(jws)
            return self._check(jws, issuer, key, now)
        except TokenRejected as exc:
            return exc.error

    async def verify(
        self, token: str | bytes, now: float | None = None
    ) -> VerifiedToken | TokenError:
        """The answer, fetching the issuer's keys once if the token names an unknown ``kid``."""
        result = self.verify_nowait(token, now)
        if result is not None:
            return result
        try:
            jws = parse_compact(_text(token), self.limits)
            issuer = self._issuer_of(jws)
            await issuer.keys.refetch()
            result = self._check(
                jws, issuer, token_key(token), self._clock() if now is None else now
            )
        except TokenRejected as exc:
            return exc.error
        if result is None:
            return TokenError(INVALID_TOKEN, "kid does not name a key of the issuer")
        return result

    def _issuer_of(self, jws: JWS) -> Issuer:
        iss = jws.claims.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise reject("iss is not a trusted issuer")
        if jws.alg not in issuer.algorithms:
            raise reject("alg is not allowed for this issuer")
        return issuer

    def _check(self, jws: JWS, issuer: Issuer, key: bytes, now: float) -> VerifiedToken | None:
        revision = issuer.keys.revision
        verification_key = issuer.keys.find(jws.kid, jws.alg, now)
        if verification_key is None:
            return None
        if not verify_signature(jws, verification_key):
            raise reject("signature does not verify")
        policy = issuer.policy
        exp = check_claims(jws.claims, jws.typ, policy, now=now)
        claims = jws.claims
        consumer = claims.get("sub") or claims.get("client_id")
        if not isinstance(consumer, str):
            raise reject("token names no subject or client_id")
        jti = claims.get("jti")
        tier = claims.get(issuer.tier_claim) if issuer.tier_claim is not None else None
        frozen = MappingProxyType(dict(claims))
        verified = VerifiedToken(
            issuer=issuer.name,
            claims=frozen,
            header=MappingProxyType(dict(jws.header)),
            expires_at=exp,
            identity=Identity(
                consumer=consumer,
                method=issuer.method,
                key_id=jti if isinstance(jti, str) else None,
                scopes=scopes_of(claims),
                tier=tier if isinstance(tier, str) else None,
                claims=frozen,
            ),
            kid=verification_key.kid,
            revision=revision,
            valid_until=exp + policy.leeway,
            signed=jws.signing_input,
        )
        if self.revocations.is_revoked(verified):
            raise reject("token was revoked", REVOKED_TOKEN)
        self.cache.put(key, verified, now)
        return verified

    async def start(self) -> None:
        """Fetch every provider's keys and start their background refresh."""
        for issuer in self.issuers.values():
            if isinstance(issuer.keys, IssuerKeys):
                await issuer.keys.start()

    async def aclose(self) -> None:
        for issuer in self.issuers.values():
            if isinstance(issuer.keys, IssuerKeys):
                await issuer.keys.aclose()


def _text(token: str | bytes) -> str:
    return token.decode("latin-1") if isinstance(token, bytes) else token


def build_issuer(
    settings: IssuerSettings,
    *,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Issuer:
    """An :class:`Issuer` from its settings: a JWKS-backed provider or a shared-secret one."""
    algorithms = frozenset(settings.algorithms)
    keys: KeySource
    if settings.shared_secret is not None:
        secret = settings.shared_secret.get_secret_value().encode()
        keys = StaticKeys([VerificationKey(None, algorithms, secret, secret_fingerprint(secret))])
    else:
        keys = IssuerKeys(
            settings.issuer,
            algorithms=algorithms,
            client=client,
            discovery_url=settings.discovery_url,
            jwks_uri=settings.jwks_uri,
            allow_http=settings.allow_http,
            refresh_interval=settings.refresh_interval,
            refetch_cooldown=settings.refetch_cooldown,
            max_stale=settings.max_stale,
            fetch_timeout=settings.fetch_timeout,
            clock=clock,
        )
    policy = ClaimsPolicy(
        issuer=settings.issuer,
        audiences=frozenset(settings.audiences),
        leeway=settings.leeway,
        token_type=settings.token_type,
        required=frozenset(settings.required_claims),
        max_lifetime=settings.max_token_lifetime,
    )
    return Issuer(policy, algorithms, keys, settings.identity_method)


def own_issuer(settings: SigningSettings, keys: SigningKeys) -> Issuer:
    """bastion's own issuer: its tokens are RFC 9068 access tokens (``typ: at+jwt``)."""
    policy = ClaimsPolicy(
        issuer=settings.issuer,
        audiences=frozenset(settings.audiences),
        leeway=settings.leeway,
        token_type="at+jwt",  # noqa: S106 (RFC 9068 typ)
        required=frozenset({"sub", "iat", "jti", "client_id"}),
        max_lifetime=settings.max_token_lifetime,
    )
    return Issuer(policy, frozenset((settings.algorithm,)), keys, "jwt", tier_claim="tier")


def build_verifier(
    settings: TokenSettings,
    *,
    signing: SigningKeys | None = None,
    client: httpx.AsyncClient | None = None,
    revocations: Revocations | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenVerifier:
    """The verifier a configuration describes (``signing`` given when ``settings.signing`` is)."""
    issuers = [build_issuer(item, client=client) for item in settings.issuers]
    if settings.signing is not None:
        if signing is None:
            raise ValueError("settings.signing is set: pass the SigningKeys that implement it")
        issuers.append(own_issuer(settings.signing, signing))
    limits = Limits(
        max_token_bytes=settings.limits.max_token_size,
        max_header_bytes=settings.limits.max_header_size,
        max_json_depth=settings.limits.max_json_depth,
    )
    return TokenVerifier(
        issuers,
        cache=TokenCache(settings.cache.max_entries),
        revocations=revocations if revocations is not None else MemoryRevocations(),
        limits=limits,
        clock=clock,
    )
