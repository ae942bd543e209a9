"""The ``bearer_token`` guard: who is calling, proven by a JWT in ``Authorization: Bearer``.

Tokens come from bastion's own issuer (``POST /oauth/token``) and from the identity providers in
``auth.tokens.issuers``; one :class:`~bastion.auth.jwt.verifier.TokenVerifier` checks both, and
a token seen before costs a BLAKE2b hash and a dictionary lookup (its signature was checked once).
Success sets :data:`~bastion.pipeline.identity.IDENTITY`; a refusal is a 401 with an RFC 6750
challenge (``WWW-Authenticate: Bearer realm="...", error="invalid_token"``), or 503 when an
issuer's keys cannot be had.

As with API keys, no token at all is not this guard's business (the requirements guard decides
whether the route needs one), and a token that is presented and fails is refused on every route.

The guard owns the background work tokens need: the providers' JWKS refresh, bastion's signing
key schedule and its resync, and the Redis listener for rotations. The chain starts and closes
them (``start``/``close``), in the serving loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, Final, cast

from bastion.auth.jwt.announce import ChangeListener
from bastion.auth.jwt.cache import MemoryRevocations, Revocations, VerifiedToken, token_parts
from bastion.auth.jwt.errors import TokenError
from bastion.auth.jwt.keyset import KeySource
from bastion.auth.jwt.signing import SigningKeys
from bastion.auth.jwt.verifier import TokenVerifier
from bastion.auth.keys.index import KeyIndex
from bastion.config.backends import RedisConfig
from bastion.errors import StateError
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE

_PREFIX: Final = b"bearer "
_SCHEME: Final = b"Bearer "  # as RFC 6750 writes it: compared first, before a lowered copy
_ALLOW_CACHE_LIMIT: Final = 10_000


class BearerTokenGuard:
    """Verifies bearer tokens with ``verifier`` (see the module docstring)."""

    name: ClassVar[str] = "bearer_token"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        realm: str = "bastion",
        signing: SigningKeys | None = None,
        redis: RedisConfig | None = None,
    ) -> None:
        self.fail_open = False
        self.verifier = verifier
        self.signing = signing
        self.realm = realm
        self.challenge = f'Bearer realm="{realm}"'
        self.skip_routes: frozenset[str] = frozenset()
        """Routes whose endpoint handles its own credentials (the token endpoint)."""
        self._listener = (
            ChangeListener(redis, signing.wake)
            if signing is not None and redis is not None and redis.url is not None
            else None
        )
        self._allows: dict[int, tuple[VerifiedToken, dict[str | None, Allow]]] = {}
        self._last: tuple[VerifiedToken, str | None, Allow] | None = None
        # What the cached path reads, bound once (the verifier never replaces them).
        self._tokens = verifier.cache
        self._max_bytes = verifier.limits.max_token_bytes
        self._clock = verifier.clock
        self._is_revoked: Callable[[VerifiedToken], bool] = verifier.revocations.is_revoked
        revocations = verifier.revocations
        # bastion's own revocation, on the verifier's clock: asked with the time already read.
        self._key_bound = (
            revocations
            if type(revocations) is KeyBoundRevocations and revocations.clock is verifier.clock
            else None
        )
        self._keys: dict[str, KeySource] = {n: i.keys for n, i in verifier.issuers.items()}
        self._started = False

    @property
    def accepts_tokens_from_providers(self) -> bool:
        """Whether an identity provider is configured (then anyone may hold a valid token)."""
        own = self.signing.issuer if self.signing is not None else None
        return any(name != own for name in self.verifier.issuers)

    # -- lifecycle

    async def start(self) -> None:
        """Load (or create) bastion's signing keys, fetch every provider's keys, and start
        their background work. Idempotent."""
        if self._started:
            return
        self._started = True
        failure: Exception | None = None
        if self.signing is not None:
            try:
                await self.signing.start()  # keeps trying in the background if the store fails
            except Exception as exc:
                failure = exc
        try:
            await self.verifier.start()
        except Exception as exc:
            failure = failure or exc
        if self._listener is not None:
            self._listener.start()
        if failure is not None:
            raise failure

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.aclose()
        await self.verifier.aclose()
        if self.signing is not None:
            await self.signing.aclose()
            close = getattr(self.signing.store, "close", None)
            if close is not None:  # a store holding a connection (PostgreSQL)
                await close()
        self._started = False

    # -- the request path

    @staticmethod
    def presented(request: Request) -> bytes | None:
        """The bearer token of the request as the header's bytes (decoded only if it must be
        parsed), or ``None``: one pass over the raw header fields."""
        for name, value in request.headers.raw:
            if name == b"authorization":
                scheme = value[:7]
                if scheme == _SCHEME or scheme.lower() == _PREFIX:
                    token = value[7:]
                    # strip() only when an end may be whitespace (every ASCII space is <= 32)
                    if token and token[0] > 32 and token[-1] > 32:
                        return token
                    return token.strip()
        return None

    def check(self, request: Request) -> Decision | Awaitable[Decision]:
        token = self.presented(request)
        if token is None:
            return ALLOW
        route = request.state.get(ROUTE)
        name = route.name if route is not None else None
        if name in self.skip_routes:
            return ALLOW
        hit = self._cached(token)
        if hit is not None:
            request.state[IDENTITY] = hit.identity
            return self._allow(hit, name)
        result = self.verifier.verify_nowait(token)
        if result is None:  # a kid not seen yet: the issuer's keys are fetched once
            return self._verify_later(request, token, name)
        return self._decide(request, result, name)

    def _cached(self, token: bytes) -> VerifiedToken | None:
        """The verified token from the cache when it is a clean hit: within its lifetime, its
        issuer's keys unchanged, not revoked. Anything else is ``None``, and the verifier then
        decides (and says why). The same checks as the verifier's own cache path, here in
        compiled code because every request with a known token runs them."""
        if len(token) > self._max_bytes:
            return None
        key, signed = token_parts(token)
        now = self._clock()
        hit = self._tokens.get(key, signed, now)
        if hit is None or hit.revision != self._keys[hit.issuer].revision:
            return None
        key_bound = self._key_bound
        if key_bound is not None:
            if key_bound.revoked(hit, now):
                return None
        elif self._is_revoked(hit):
            return None
        return hit

    async def _verify_later(self, request: Request, token: bytes, route: str | None) -> Decision:
        return self._decide(request, await self.verifier.verify(token), route)

    def _decide(
        self, request: Request, result: VerifiedToken | TokenError, route: str | None
    ) -> Decision:
        if type(result) is TokenError:
            return self._deny(result)
        verified = cast(VerifiedToken, result)
        request.state[IDENTITY] = verified.identity
        return self._allow(verified, route)

    def _allow(self, token: VerifiedToken, route: str | None) -> Allow:
        """The success decision (with its ``auth.success`` event fields), built once per token
        and route. The cache holds the token itself, so its ``id`` is not reused meanwhile."""
        last = self._last  # the token and route of the request before: two checks
        if last is not None and last[0] is token and (last[1] is route or last[1] == route):
            return last[2]
        allow = self._allow_of(token, route)
        self._last = (token, route, allow)
        return allow

    def _allow_of(self, token: VerifiedToken, route: str | None) -> Allow:
        cached = self._allows.get(id(token))
        if cached is None or cached[0] is not token:
            if len(self._allows) >= _ALLOW_CACHE_LIMIT:
                self._allows.clear()
            cached = self._allows[id(token)] = (token, {})
        allows = cached[1]
        allow = allows.get(route)
        if allow is None:
            identity = token.identity
            fields: dict[str, object] = {
                "consumer": identity.consumer,
                "auth_method": identity.method,
                "issuer": token.issuer,
            }
            if identity.key_id is not None:
                fields["key_id"] = identity.key_id
            client_id = token.claims.get("client_id")
            if isinstance(client_id, str):
                fields["client_id"] = client_id
            if route is not None:
                fields["route"] = route
            allow = allows[route] = Allow(event="auth.success", fields=fields)
        return allow

    def _deny(self, error: TokenError) -> Deny:
        deny = error.deny(self.realm)
        fields = {**deny.fields, "auth_method": "bearer"}
        headers = tuple((name.lower(), value) for name, value in deny.headers)
        return dataclasses.replace(deny, headers=headers, fields=fields)


class KeyBoundRevocations:
    """Revocation for bastion's own tokens: the API key named by ``client_id`` must still be
    known, unrevoked and unexpired in ``index``. Tokens of other issuers go to ``other``.

    Runs on every cached hit: two dictionary lookups and a clock reading (defined here, in a
    compiled module, because every request with a cached token runs it). While the key index
    has never been read, bastion's tokens cannot be judged: that is an infrastructure failure
    (503 through the chain's fail-closed rule), not a refusal of the token.
    """

    def __init__(
        self,
        index: KeyIndex,
        issuer: str,
        *,
        other: Revocations | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.issuer = issuer
        self.other: Revocations = other if other is not None else MemoryRevocations()
        self.clock = clock

    def is_revoked(self, token: VerifiedToken) -> bool:
        return self.revoked(token, self.clock())

    def revoked(self, token: VerifiedToken, now: float) -> bool:
        """:meth:`is_revoked` at ``now`` (a time read from :attr:`clock`)."""
        if token.issuer == self.issuer:
            index = self.index
            if not index.loaded:
                raise StateError("API keys are not loaded yet: bastion's tokens cannot be judged")
            claims = token.claims
            # Item access, not .get: compiled, it costs no method call on the read-only mapping.
            client_id = claims["client_id"] if "client_id" in claims else None  # noqa: SIM401
            entry = index.entries.get(client_id) if isinstance(client_id, str) else None
            if entry is None:
                return True
            if entry.revoked or entry.expires_at <= now:
                return True
        other = self.other
        if type(other) is MemoryRevocations:  # the default: a compiled call, no lookup by name
            return other.is_revoked(token)
        return other.is_revoked(token)
