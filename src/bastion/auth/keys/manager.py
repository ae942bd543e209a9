"""The key lifecycle the ``bastion keys`` commands drive: create, list, show, rotate, revoke.

Kept apart from the CLI so that it can be embedded (an admin API later) and tested with a fake
clock. Creating the first key creates the store (SQLite: ``state_dir/keys.db``, mode 0600) and
the pepper; every change is announced over Redis when ``redis.url`` is set, so gateways read
it at once rather than at their next periodic read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bastion.auth.apikey import pepper_path
from bastion.auth.keys import notify
from bastion.auth.keys.format import ID_PATTERN, generate
from bastion.auth.keys.hashing import KeyHasher, load_pepper
from bastion.config.auth import SCOPE
from bastion.config.models import BastionConfig
from bastion.errors import ConfigError, StateError
from bastion.store import open_key_store
from bastion.store.records import KeyRecord, KeyStore

CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
TIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NAME = re.compile(r"^[^\x00-\x1f\x7f]{0,64}$")


class UnknownKey(StateError):
    """No key has this id."""

    code = "keys.unknown"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: its record, and the secret, which exists nowhere else."""

    record: KeyRecord
    secret: str

    def __repr__(self) -> str:
        return f"IssuedKey(id={self.record.id!r}, secret='***')"


@dataclass(frozen=True, slots=True)
class Rotation:
    new: IssuedKey
    old: KeyRecord
    announced: int | None


def check_inputs(consumer: str, scopes: tuple[str, ...], tier: str | None, name: str) -> None:
    """Refuse what could not be stored or sent upstream safely, naming the input."""
    if not CONSUMER.match(consumer):
        raise ConfigError(
            f"--consumer: got {consumer!r}; expected up to 128 letters, digits or '._@:-'"
        )
    for scope in scopes:
        if not SCOPE.match(scope):
            raise ConfigError(
                f"--scope: got {scope!r}; expected letters, digits and '_.:/*-' (no spaces)"
            )
    if tier is not None and not TIER.match(tier):
        raise ConfigError(f"--tier: got {tier!r}; expected a lower-case name such as gold")
    if not NAME.match(name):
        raise ConfigError("--name: expected up to 64 printable characters")


class KeyManager:
    """The key lifecycle over the store ``config`` names, with an injectable ``clock``."""

    def __init__(
        self,
        config: BastionConfig,
        *,
        clock: Callable[[], float] = time.time,
        store: KeyStore | None = None,
        hasher: KeyHasher | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        if hasher is None:
            pepper = load_pepper(pepper_path(config), create=True)
            assert pepper is not None
            hasher = KeyHasher(pepper)
        self.hasher = hasher
        self.store = store if store is not None else open_key_store(config, create=True)
        if not self.store.pepper_check(hasher.fingerprint):
            self.store.close()
            raise StateError(
                "the API key pepper differs from the one the key store was created with;"
                " expected the same pepper file or $BASTION_API_KEY_PEPPER"
            )

    def close(self) -> None:
        self.store.close()

    def lifetime(self, expires_in: float | None) -> float:
        keys = self.config.auth.api_keys
        seconds = keys.default_expiry if expires_in is None else expires_in
        if seconds <= 0:
            raise ConfigError(f"--expires: got {seconds:g}s; expected a positive duration")
        if seconds > keys.max_expiry:
            raise ConfigError(
                f"--expires: got {seconds:g}s; expected at most auth.api_keys.max_expiry"
                f" ({keys.max_expiry:g}s)"
            )
        return seconds

    def _issue(
        self,
        consumer: str,
        scopes: frozenset[str],
        tier: str | None,
        name: str,
        lifetime: float,
    ) -> IssuedKey:
        now = self.clock()
        key = generate()
        record = KeyRecord(
            id=key.id,
            hash=self.hasher.hexdigest(key.secret),
            consumer=consumer,
            name=name,
            scopes=scopes,
            tier=tier,
            created_at=now,
            expires_at=now + lifetime,
        )
        return IssuedKey(record, key.secret)

    def create(
        self,
        consumer: str,
        *,
        scopes: tuple[str, ...] = (),
        tier: str | None = None,
        name: str = "",
        expires_in: float | None = None,
    ) -> IssuedKey:
        check_inputs(consumer, scopes, tier, name)
        issued = self._issue(consumer, frozenset(scopes), tier, name, self.lifetime(expires_in))
        stored = self.store.insert(issued.record)
        notify.publish(self.config.redis, "create", stored.id, self.clock())
        return IssuedKey(stored, issued.secret)

    def list(self, consumer: str | None = None) -> list[KeyRecord]:
        return self.store.records(consumer)

    def get(self, key_id: str) -> KeyRecord:
        record = self.store.get(key_id) if ID_PATTERN.fullmatch(key_id) else None
        if record is None:
            raise UnknownKey(f"no API key has the id {key_id!r}")
        return record

    def rotate(self, key_id: str, *, grace: float, expires_in: float | None = None) -> Rotation:
        """A new key for the same consumer, scopes and tier; the old one keeps working for
        ``grace`` seconds (0: stops now), never longer than it would have anyway."""
        if grace < 0:
            raise ConfigError(f"--grace: got {grace:g}s; expected a duration that is not negative")
        old = self.get(key_id)
        if old.revoked_at is not None:
            raise StateError(f"API key {key_id} is revoked; expected a key that is not revoked")
        if old.replaced_by is not None:
            raise StateError(
                f"API key {key_id} was already rotated to {old.replaced_by}; rotate that one"
            )
        lifetime = self.lifetime(expires_in)
        issued = self._issue(old.consumer, old.scopes, old.tier, old.name, lifetime)
        updated = self.store.rotate(key_id, issued.record, self.clock() + grace)
        if updated is None:
            raise UnknownKey(f"no API key has the id {key_id!r}")
        new = self.store.get(issued.record.id)
        assert new is not None
        announced = notify.publish(self.config.redis, "rotate", key_id, self.clock())
        return Rotation(IssuedKey(new, issued.secret), updated, announced)

    def revoke(self, key_id: str) -> tuple[KeyRecord, int | None]:
        """Revoke now; the record and how many gateways heard it over Redis (``None``: no
        Redis, or unreachable; gateways then see it at their next store read)."""
        self.get(key_id)
        record = self.store.revoke(key_id, self.clock())
        if record is None:
            raise UnknownKey(f"no API key has the id {key_id!r}")
        announced = notify.publish(self.config.redis, "revoke", key_id, self.clock())
        return record, announced
