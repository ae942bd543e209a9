"""The ``api_key`` guard: who is calling, proven by an API key in a header.

A key is read from ``auth.api_keys.header`` (``X-API-Key``) or from ``Authorization: ApiKey
<key>``. The checks go from cheapest to dearest: length and prefix, the id's entry in the
in-memory index (kept fresh by :class:`~bastion.auth.keys.sync.KeySync`), the keyed hash of the
whole key compared in constant time (an unknown id is compared against a dummy digest), then
revocation and expiry. Every failure also computes the checksum, to tell a malformed key (never
identified in events) from an unknown or wrong one; so each failure costs the same, and timing
tells no one which key ids exist. Success sets :data:`~bastion.pipeline.identity.IDENTITY`;
the last-use time is noted in memory and written in batches.

No key at all is not this guard's business: the requirements guard decides whether the route
needs one. A key that is presented and fails is always refused (401), on any route, so that a
broken or stolen key never silently degrades to an anonymous call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from hmac import compare_digest
from pathlib import Path
from typing import ClassVar, Final, cast

from bastion.auth.keys.format import ID_LENGTH, KEY_LENGTH, PREFIX, key_id_of
from bastion.auth.keys.hashing import PEPPER_FILE, KeyHasher, load_pepper
from bastion.auth.keys.index import KeyEntry, KeyIndex
from bastion.auth.keys.sync import KeySync, Opener
from bastion.config.models import BastionConfig
from bastion.errors import StateError
from bastion.observability.events import EventSink, SecurityEvent
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.store import key_store_location, open_key_store
from bastion.store.records import KeyStore

Clock = Callable[[], float]

WARNING_EVERY = 3600.0
"""A key near its expiry is reported at most once an hour per gateway process."""

_DUMMY: Final = bytes(32)
# The key's shape as literals, so the compiled request path reads no module globals.
_PREFIX: Final = "bst_"
_KEY_LENGTH: Final = 55
_ID_START: Final = 4
_ID_END: Final = 16
if (PREFIX, KEY_LENGTH, len(PREFIX) + ID_LENGTH) != (_PREFIX, _KEY_LENGTH, _ID_END):
    raise ImportError("bastion.auth.apikey: the key shape differs from bastion.auth.keys.format")
INVALID_DETAIL = "The API key is not valid."
EXPIRED_DETAIL = "The API key has expired; ask for a new one."


@dataclass(frozen=True, slots=True)
class KeyFailure:
    """Why a presented key is refused: ``malformed`` (never identified), ``unknown_key``,
    ``wrong_secret``, ``revoked`` or ``expired``; with the key id and consumer when known."""

    reason: str
    key_id: str | None = None
    consumer: str | None = None
    expires_at: float | None = None


def pepper_path(config: BastionConfig) -> Path:
    return config.auth.api_keys.pepper_file or config.state_dir / PEPPER_FILE


def store_opener(config: BastionConfig) -> Opener:
    """Opens the configured store and pepper for a gateway (never creates either)."""

    def open_store() -> tuple[KeyStore, KeyHasher] | None:
        location = key_store_location(config)
        if location is not None and not location.exists():
            return None
        pepper = load_pepper(pepper_path(config), create=False)
        if pepper is None and _never_held_keys(config):
            return None  # the store never held a key (it holds events, or nothing yet)
        if pepper is None:
            raise StateError(
                f"API keys exist but the pepper file {pepper_path(config)} is missing; expected"
                " the pepper they were hashed with (or $BASTION_API_KEY_PEPPER)"
            )
        hasher = KeyHasher(pepper)
        store = open_key_store(config, create=False)
        if not store.pepper_check(hasher.fingerprint):
            store.close()
            raise StateError(
                "the API key pepper differs from the one the key store was created with;"
                " expected the same pepper file or $BASTION_API_KEY_PEPPER on every instance"
            )
        return store, hasher

    return open_store


def _never_held_keys(config: BastionConfig) -> bool:
    """Whether the state store never had a key (revision 0): on SQLite the event store makes
    the file too, on the first security event; on PostgreSQL ``bastion db upgrade`` makes the
    tables before any ``bastion keys create``. Without a pepper, such a store is simply empty,
    not a store whose pepper went missing."""
    store = open_key_store(config, create=False)
    try:
        return store.revision() == 0
    finally:
        store.close()


class ApiKeyGuard:
    """Verifies API keys against the index of ``sync``; see the module docstring."""

    name: ClassVar[str] = "api_key"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        sync: KeySync,
        events: EventSink,
        *,
        header: str = "x-api-key",
        authorization_scheme: str | None = "ApiKey",
        realm: str = "bastion",
        expiry_warning: float = 14 * 86400.0,
        clock: Clock = time.time,
    ) -> None:
        self.fail_open = False
        self.sync = sync
        self.index: KeyIndex = sync.index
        self._used = sync.used
        self.events = events
        self.header = header
        self._header_bytes = header.encode("ascii")
        self._scheme_bytes = (
            (authorization_scheme.lower() + " ").encode("ascii") if authorization_scheme else None
        )
        # The scheme's first byte in either case: an Authorization field starting otherwise
        # (Bearer ...) is passed over without a lowered copy of its start.
        first = self._scheme_bytes[0] if self._scheme_bytes else -1
        self._first_lower = first
        self._first_upper = first - 32 if 97 <= first <= 122 else first
        self.challenge = f'{authorization_scheme or "ApiKey"} realm="{realm}"'
        self.warning = expiry_warning
        self.clock = clock
        self._warned: dict[str, float] = {}
        self._www = (("www-authenticate", self.challenge),)
        self.skip_routes: frozenset[str] = frozenset()
        """Routes whose endpoint authenticates its clients itself (the token endpoint answers
        RFC 6749 errors): a key presented there is left to it."""

    @classmethod
    def from_config(
        cls,
        config: BastionConfig,
        events: EventSink,
        *,
        clock: Clock = time.time,
        opener: Opener | None = None,
        start: bool = True,
    ) -> ApiKeyGuard:
        """The guard for ``config``: reads the store once now, then keeps it fresh in the
        background (unless ``start`` is false: tests drive :meth:`KeySync.refresh` by hand)."""
        keys = config.auth.api_keys
        sync = KeySync(
            KeyIndex(),
            opener or store_opener(config),
            interval=keys.refresh_interval,
            redis_config=config.redis,
            clock=clock,
        )
        sync.refresh()
        if start:
            sync.start()
        return cls(
            sync,
            events,
            header=keys.header,
            authorization_scheme=keys.authorization_scheme,
            realm=config.auth.realm,
            expiry_warning=keys.expiry_warning,
            clock=clock,
        )

    async def start(self) -> None:
        """Nothing to do: the sync threads start with the guard (they need no event loop, so
        the ASGI middleware, which has no start hook, gets them too)."""

    async def close(self) -> None:
        """Stop the sync threads, write pending last-use times, close the store."""
        self.sync.close()

    def unready(self) -> str | None:
        """Not ready until the key store was read once: before that every request presenting a
        key is refused 503 (see :mod:`bastion.engine.readiness`). Later outages keep serving the
        keys as last read, and keep the instance ready."""
        if self.index.loaded:
            return None
        return "API keys: the key store has not been read yet"

    def presented(self, request: Request) -> str | None:
        """The key the request presents, or ``None``: one pass over the raw header fields (no
        decoding of the others; the placement guard has already refused two credentials)."""
        header, scheme = self._header_bytes, self._scheme_bytes
        for name, value in request.headers.raw:
            if name == header:
                return value.decode("latin-1").strip()
            if (
                name == b"authorization"
                and scheme is not None
                and value
                and (value[0] == self._first_lower or value[0] == self._first_upper)
                and value[: len(scheme)].lower() == scheme
            ):
                return value[len(scheme) :].decode("latin-1").strip()
        return None

    def check(self, request: Request) -> Decision:
        presented = self.presented(request)
        if presented is None:
            return ALLOW  # no key: whether one is needed is the requirements guard's call
        state = request.state
        route = state.get(ROUTE)
        name = route.name if route is not None else None
        if name is not None and name in self.skip_routes:
            return ALLOW  # an endpoint that authenticates its clients itself (/oauth/token)
        now = self.clock()
        found = self.authenticate(presented, now)
        if type(found) is not KeyEntry:
            return self._deny(cast(KeyFailure, found))
        entry = found
        if entry.expires_at - now <= self.warning:
            self._warn(request, entry, now)
        state[IDENTITY] = entry.identity
        self._used[entry.key_id] = now  # KeySync.record_use, without a call into the sync
        allow = entry.allows.get(name)
        return allow if allow is not None else entry.allow(name)

    def authenticate(self, presented: str, now: float) -> KeyEntry | KeyFailure:
        """The index entry of a valid, current key, or why ``presented`` is refused.

        The checks run from the cheapest: length and prefix, the id's entry, the keyed hash of
        the whole key compared in constant time (a tampered checksum, id or secret all change
        the digest, so the success path needs no separate checksum test), then revocation and
        expiry. A key that verified before is recognised by its quick MAC instead of the HMAC
        (see :mod:`bastion.auth.keys.index`); revocation and expiry are checked every time.
        Shared by the guard and the token endpoint's client authentication.
        """
        index = self.index
        if not index.loaded:
            raise StateError("API keys are not loaded yet (the key store could not be read)")
        if len(presented) != _KEY_LENGTH or not presented.startswith(_PREFIX):
            return KeyFailure("malformed")
        entry = index.entries.get(presented[_ID_START:_ID_END])
        hasher = index.hasher
        # The quick MAC first: equal to the one remembered for this key only if this very key
        # verified before. Computed and compared on every path (against a dummy when there is
        # nothing to compare with), so that a failure costs the same whether or not the id
        # exists or was used lately.
        quick = hasher.quick(presented) if hasher is not None else _DUMMY
        seen = entry.seen if entry is not None else None
        matched = compare_digest(quick, seen if seen is not None else _DUMMY)
        if not (matched and seen is not None):
            digest = hasher.digest(presented) if hasher is not None else _DUMMY
            if entry is None or not compare_digest(digest, entry.digest):
                if entry is None:
                    compare_digest(digest, _DUMMY)  # the same work whether the id exists
                return self._refused(presented, entry)
            entry.seen = quick
        assert entry is not None
        if entry.revoked:
            record = entry.record
            return KeyFailure("revoked", record.id, record.consumer)
        if entry.expires_at <= now:
            record = entry.record
            return KeyFailure("expired", record.id, record.consumer, record.expires_at)
        return entry

    def _deny(self, failure: KeyFailure) -> Deny:
        if failure.reason == "expired":
            return Deny(
                401,
                "auth.expired_credentials",
                "Unauthorized",
                EXPIRED_DETAIL,
                headers=self._www,
                fields={
                    "reason": "expired",
                    "consumer": failure.consumer,
                    "key_id": failure.key_id,
                    "auth_method": "api_key",
                    "expired_at": failure.expires_at,
                },
            )
        return self._invalid(failure.reason, failure.key_id, failure.consumer)

    def _refused(self, presented: str, entry: KeyEntry | None) -> KeyFailure:
        """Why a key whose digest did not match is refused (the failure path only, so the
        checksum is computed here and every failure costs the same)."""
        key_id = key_id_of(presented)
        if key_id is None:
            return KeyFailure("malformed")
        if entry is None:
            return KeyFailure("unknown_key", key_id)
        return KeyFailure("wrong_secret", key_id, entry.record.consumer)

    def _invalid(self, reason: str, key_id: str | None, consumer: str | None) -> Deny:
        fields: dict[str, object] = {"reason": reason, "auth_method": "api_key"}
        if key_id is not None:
            fields["key_id"] = key_id
        if consumer is not None:
            fields["consumer"] = consumer
        return Deny(
            401,
            "auth.invalid_credentials",
            "Unauthorized",
            INVALID_DETAIL,
            headers=self._www,
            fields=fields,
        )

    def _warn(self, request: Request, entry: KeyEntry, now: float) -> None:
        record = entry.record
        last = self._warned.get(record.id)
        if last is not None and now - last < WARNING_EVERY:
            return
        self._warned[record.id] = now
        left = record.expires_at - now
        fields: dict[str, object] = {
            "consumer": record.consumer,
            "key_id": record.id,
            "auth_method": "api_key",
            "expires_at": record.expires_at,
            "expires_in_seconds": round(left),
        }
        if record.replaced_by is not None:
            fields["replaced_by"] = record.replaced_by
        self.events.emit(
            SecurityEvent.for_request(
                request,
                action="auth.key_expiring",
                outcome="success",
                guard=self.name,
                reason=f"the API key expires in {_span(left)}",
                user_id=record.consumer,
                fields=fields,
            )
        )


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"
