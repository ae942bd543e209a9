"""An identity provider's signing keys: OIDC discovery, JWKS fetch, cache, refresh, stale serving.

:class:`IssuerKeys` keeps one issuer's keys in memory so that verifying a token never waits on
the network, except once for a ``kid`` it has not seen (the provider rotated):

- discovery reads ``<issuer>/.well-known/openid-configuration``; the document's ``issuer`` must
  equal the configured one exactly (OpenID Connect Discovery §4.3), its ``jwks_uri`` is then used;
- the JWKS is fetched with httpx: HTTPS with certificate verification (plain HTTP only when
  ``allow_http`` says so, for tests), no redirects, a timeout, a size cap, a cap on the keys;
- a background task refreshes the keys every ``refresh_interval`` (sooner after a failure);
- an unknown ``kid`` triggers one refetch, single-flight (every request waiting for the same
  answer shares one fetch) and at most once per ``refetch_cooldown`` (a flood of made-up kids
  costs the provider one request per cooldown);
- while the provider is down the last keys keep being served, for at most ``max_stale`` after
  the last successful fetch; past that, tokens of this issuer get ``auth.keys_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from bastion.auth.jwt.errors import KEYS_UNAVAILABLE, TokenRejected, reject
from bastion.auth.jwt.jose import HMAC_ALGORITHMS, VerificationKey, load_json_object
from bastion.auth.jwt.jwk import JWKError, key_from_jwk
from bastion.auth.jwt.keyset import KeySet
from bastion.errors import BastionError

log = logging.getLogger("bastion.auth.jwt")

DISCOVERY_PATH = "/.well-known/openid-configuration"


class KeyFetchError(BastionError):
    """Discovery or the JWKS could not be had; the message is bastion's own (no body, no URL
    credentials: configured URLs cannot carry any)."""

    code = "auth.keys_unavailable"
    status = 503


def check_url(url: str, *, allow_http: bool, what: str) -> str:
    """``url`` if it is an absolute https:// URL (http:// with ``allow_http``) without userinfo."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} must be an absolute {' or '.join(schemes)}:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} must not contain user:password")
    if parts.fragment:
        raise ValueError(f"{what} must not contain a fragment")
    return url


class IssuerKeys:
    """The keys of one identity provider, cached and kept fresh (see the module docstring).

    ``clock`` is a monotonic clock for cooldowns and staleness (tests pass a fake one);
    ``sleep`` is what the background task waits with.
    """

    def __init__(
        self,
        issuer: str,
        *,
        algorithms: frozenset[str],
        client: httpx.AsyncClient | None = None,
        discovery_url: str | None = None,
        jwks_uri: str | None = None,
        allow_http: bool = False,
        refresh_interval: float = 3600.0,
        retry_interval: float = 30.0,
        refetch_cooldown: float = 30.0,
        max_stale: float = 86400.0,
        fetch_timeout: float = 5.0,
        max_document_bytes: int = 256 * 1024,
        max_keys: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if algorithms & HMAC_ALGORITHMS:
            raise ValueError("HMAC algorithms are never verified with keys from a JWKS")
        if not algorithms:
            raise ValueError("an issuer needs at least one allowed algorithm")
        self.issuer = issuer
        self.algorithms = algorithms
        self.allow_http = allow_http
        self.discovery_url = check_url(
            discovery_url or issuer.rstrip("/") + DISCOVERY_PATH,
            allow_http=allow_http,
            what="discovery URL",
        )
        self.jwks_uri = (
            check_url(jwks_uri, allow_http=allow_http, what="jwks_uri") if jwks_uri else None
        )
        self._static_jwks_uri = jwks_uri is not None
        self.refresh_interval = refresh_interval
        self.retry_interval = min(retry_interval, refresh_interval)
        self.refetch_cooldown = refetch_cooldown
        self.max_stale = max_stale
        self.fetch_timeout = fetch_timeout
        self.max_document_bytes = max_document_bytes
        self.max_keys = max_keys
        self._clock = clock
        self._sleep = sleep
        self._client = client
        self._own_client = client is None
        self.keys = KeySet()
        self.fetched_at: float | None = None
        self.last_attempt: float | None = None
        self.fetches = 0  # JWKS requests sent, for metrics and tests
        self.revision = 0  # a plain attribute: the cached-token path reads it per request
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- the hot path --------------------------------------------------------------------

    def find(self, kid: str | None, alg: str, now: float) -> VerificationKey | None:
        """The key for ``kid``/``alg`` from memory; never waits (see :class:`KeySource`)."""
        fetched_at = self.fetched_at
        if fetched_at is None:
            return None  # never fetched: a refetch may help; after it, keys_unavailable
        if self._clock() - fetched_at > self.max_stale:
            raise reject("issuer keys are older than max_stale", KEYS_UNAVAILABLE)
        return self.keys.find(kid, alg)

    async def refetch(self) -> bool:
        """Look for new keys after an unknown ``kid``: join a fetch in flight, else start one
        unless the last attempt was less than ``refetch_cooldown`` ago. True if keys changed
        hands (a fetch succeeded)."""
        if self._inflight is None:
            last = self.last_attempt
            if last is not None and self._clock() - last < self.refetch_cooldown:
                if self.fetched_at is None:
                    raise reject("issuer keys have not been fetched", KEYS_UNAVAILABLE)
                return False
        ok = await self.refresh()
        if not ok and self.fetched_at is None:
            raise reject("issuer keys have not been fetched", KEYS_UNAVAILABLE)
        return ok

    # -- fetching ------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch the keys now (single-flight: joins a fetch in flight). True on success."""
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(task)

    async def _fetch(self) -> bool:
        self.last_attempt = self._clock()
        try:
            if self.jwks_uri is None or (not self._static_jwks_uri and self.fetched_at is None):
                self.jwks_uri = await self._discover()
            keys = await self._fetch_jwks(self.jwks_uri)
        except KeyFetchError as exc:
            age = "never fetched" if self.fetched_at is None else "serving the last keys"
            log.warning("issuer %s: %s (%s)", self.issuer, exc.message, age)
            if not self._static_jwks_uri and self.fetched_at is not None:
                self.jwks_uri = None  # rediscover next time: the jwks_uri may have moved
            return False
        finally:
            self._inflight = None
        if not self.keys.identities() <= keys.identities():
            self.revision += 1  # a key went away: cached verifications by it must be redone
        self.keys = keys
        self.fetched_at = self._clock()
        return True

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            async with client.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=self.fetch_timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise KeyFetchError(f"{what} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if (
                    declared
                    and declared.isascii()
                    and declared.isdigit()
                    and (len(declared) > 18 or int(declared) > self.max_document_bytes)
                ):
                    raise KeyFetchError(f"{what} exceeds {self.max_document_bytes} bytes")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_document_bytes:
                        raise KeyFetchError(f"{what} exceeds {self.max_document_bytes} bytes")
        except httpx.TimeoutException:
            raise KeyFetchError(f"{what} timed out") from None
        except httpx.HTTPError as exc:
            raise KeyFetchError(f"{what} failed ({type(exc).__name__})") from None
        try:
            return load_json_object(bytes(body), what, 6)
        except TokenRejected as exc:
            raise KeyFetchError(exc.error.reason) from None

    async def _discover(self) -> str:
        doc = await self._get_json(self.discovery_url, "discovery document")
        if doc.get("issuer") != self.issuer:
            raise KeyFetchError("discovery document names another issuer")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeyFetchError("discovery document has no jwks_uri")
        try:
            return check_url(jwks_uri, allow_http=self.allow_http, what="jwks_uri")
        except ValueError as exc:
            raise KeyFetchError(f"discovery document: {exc}") from None

    async def _fetch_jwks(self, url: str) -> KeySet:
        self.fetches += 1
        doc = await self._get_json(url, "JWKS")
        return self.parse_jwks(doc)

    def parse_jwks(self, doc: Mapping[str, Any]) -> KeySet:
        """The usable keys of a JWKS document; unusable ones are skipped and counted in the log."""
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise KeyFetchError("JWKS has no keys list")
        if len(entries) > self.max_keys:
            raise KeyFetchError(f"JWKS has more than {self.max_keys} keys")
        keys: list[VerificationKey] = []
        skipped: dict[str, int] = {}
        for entry in entries:
            try:
                keys.append(key_from_jwk(entry, self.algorithms))
            except JWKError as exc:
                skipped[str(exc)] = skipped.get(str(exc), 0) + 1
        if skipped:
            log.info("issuer %s: JWKS keys skipped: %s", self.issuer, skipped)
        if not keys:
            raise KeyFetchError("JWKS has no usable key")
        return KeySet.of(keys)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> bool:
        """Fetch once, then keep refreshing in the background. False if the first fetch failed
        (the gateway still starts; this issuer's tokens wait for a successful fetch)."""
        ok = await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._run(ok), name=f"jwks-refresh {self.issuer}")
        return ok

    async def _run(self, ok: bool) -> None:
        while True:
            await self._sleep(self.refresh_interval if ok else self.retry_interval)
            ok = await self.refresh()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
