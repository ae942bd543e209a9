"""What the admin API does with keys: the same :class:`KeyManager` and signing-key code the
``bastion keys`` and ``bastion jwks`` commands use, run off the event loop (stores are
synchronous; the admin listener may share its loop with the public one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bastion.auth.jwt import announce
from bastion.auth.keys.manager import KeyManager
from bastion.cli.keys import record_doc
from bastion.config.models import BastionConfig
from bastion.errors import StateError

T = TypeVar("T")


def _docs(config: BastionConfig, records: list[Any], now: float) -> list[dict[str, Any]]:
    warning = config.auth.api_keys.expiry_warning
    return [record_doc(r, now, warning) for r in records]


class KeyService:
    """API keys and signing keys for the config in force (``config()`` follows reloads)."""

    def __init__(
        self, config: Callable[[], BastionConfig], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.clock = clock

    async def _with_manager(self, work: Callable[[KeyManager], T]) -> T:
        config = self.config()

        def run() -> T:
            manager = KeyManager(config, clock=self.clock)
            try:
                return work(manager)
            finally:
                manager.close()

        return await asyncio.to_thread(run)

    async def list_keys(self, consumer: str | None = None) -> list[dict[str, Any]]:
        records = await self._with_manager(lambda m: m.list(consumer))
        return _docs(self.config(), records, self.clock())

    async def get(self, key_id: str) -> dict[str, Any]:
        record = await self._with_manager(lambda m: m.get(key_id))
        return _docs(self.config(), [record], self.clock())[0]

    async def create(
        self,
        consumer: str,
        scopes: tuple[str, ...],
        tier: str | None,
        name: str,
        expires_in: float | None,
    ) -> dict[str, Any]:
        issued = await self._with_manager(
            lambda m: m.create(consumer, scopes=scopes, tier=tier, name=name, expires_in=expires_in)
        )
        doc = _docs(self.config(), [issued.record], self.clock())[0]
        return doc | {"secret": issued.secret}

    async def rotate(self, key_id: str, grace: float, expires_in: float | None) -> dict[str, Any]:
        rotation = await self._with_manager(
            lambda m: m.rotate(key_id, grace=grace, expires_in=expires_in)
        )
        now = self.clock()
        new, old = _docs(self.config(), [rotation.new.record, rotation.old], now)
        return {"new": new | {"secret": rotation.new.secret}, "old": old}

    async def revoke(self, key_id: str) -> dict[str, Any]:
        record, announced = await self._with_manager(lambda m: m.revoke(key_id))
        doc = _docs(self.config(), [record], self.clock())[0]
        return doc | {"announced_to": announced}

    async def consumers(self) -> list[dict[str, Any]]:
        summary: dict[str, dict[str, Any]] = {}
        for doc in await self.list_keys():
            entry = summary.setdefault(
                doc["consumer"], {"consumer": doc["consumer"], "keys": 0, "active": 0}
            )
            entry["keys"] += 1
            if doc["status"] in ("active", "expiring", "grace"):
                entry["active"] += 1
        return sorted(summary.values(), key=lambda e: str(e["consumer"]))

    # -- signing keys

    async def signing_keys(self) -> dict[str, Any]:
        from bastion.cli.jwks import key_rows

        keys, store = self._signing()
        try:
            await keys.read()
            now = self.clock()
            return {"keys": key_rows(keys, now), "jwks": keys.jwks(now)}
        finally:
            await _close(store)

    async def rotate_signing(self, revoke_previous: bool) -> dict[str, Any]:
        from bastion.cli.jwks import key_rows

        config = self.config()
        keys, store = self._signing()
        try:
            kid = await keys.rotate(revoke_previous=revoke_previous)
            announced = await announce.publish(config.redis, kid)
            return {"kid": kid, "announced_to": announced, "keys": key_rows(keys, self.clock())}
        finally:
            await _close(store)

    def _signing(self) -> tuple[Any, Any]:
        from bastion.auth.jwt.signing import SigningKeys
        from bastion.auth.tokens import open_signing_store

        config = self.config()
        settings = config.auth.tokens.signing
        if settings is None:
            raise StateError("auth.tokens.signing is not set: this gateway signs no tokens")
        store = open_signing_store(config, create_pepper=False)
        keys = SigningKeys.from_settings(
            settings, state_dir=config.state_dir, store=store, clock=self.clock
        )
        return keys, store


async def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        with contextlib.suppress(StateError):
            await close()
