"""Signing-key changes announced over Redis pub/sub, so every instance reloads at once.

Advisory, like the API-key announcements (:mod:`bastion.auth.keys.notify`): an instance that
misses a message (Redis down, a reconnect) still sees the change at its next
``resync_interval`` poll of the store. Nothing here is on the request path, and no message
carries key material: only that the keys changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson
import redis
import redis.asyncio

from bastion.config.backends import RedisConfig

log = logging.getLogger("bastion.auth.jwt")


def channel(config: RedisConfig) -> str:
    return f"{config.key_prefix}signing-keys:changes"


def _client(config: RedisConfig, *, listening: bool = False) -> redis.asyncio.Redis:
    assert config.url is not None
    return redis.asyncio.Redis.from_url(
        config.url,
        socket_connect_timeout=config.connect_timeout,
        socket_timeout=None if listening else max(config.command_timeout, 1.0),
    )


async def publish(config: RedisConfig, kid: str | None = None) -> int | None:
    """Announce that the signing keys changed; how many instances listen, or ``None`` when
    Redis is not configured or cannot be reached (they see the change at their next poll)."""
    if config.url is None:
        return None
    client = _client(config)
    try:
        message = orjson.dumps({"type": "signing-keys", "kid": kid, "at": time.time()})
        return int(await client.publish(channel(config), message))
    except (redis.RedisError, OSError) as exc:
        log.warning("signing key change not announced over Redis (%s)", type(exc).__name__)
        return None
    finally:
        await client.aclose()


class ChangeListener:
    """Calls ``on_change`` for every announcement (and after each (re)subscription, to catch
    up with what was announced while not listening). Reconnects with a growing back-off."""

    def __init__(self, config: RedisConfig, on_change: Callable[[], None]) -> None:
        self.config = config
        self.on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.config.url is not None:
            self._task = asyncio.create_task(self._run(), name="signing-key-announcements")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.1
        failing = False
        while True:
            client = _client(self.config, listening=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel(self.config))
                if failing:
                    log.warning("signing keys: listening for changes on Redis again")
                failing, backoff = False, 0.1
                self.on_change()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.on_change()
            except (redis.RedisError, OSError) as exc:
                if not failing:
                    log.error(
                        "signing keys: Redis change channel lost (%s); relying on store polls",
                        type(exc).__name__,
                    )
                failing = True
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
