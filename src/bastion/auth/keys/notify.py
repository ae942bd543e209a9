"""Key changes announced over Redis pub/sub, so every gateway hears of a revocation at once.

The message is advisory: a gateway that receives it marks the key revoked immediately and reads
the store's changes right away; one that misses it (Redis down, a reconnect) still sees the
change at its next periodic read of the store. Nothing here is on the request path.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import redis

from bastion.config.backends import RedisConfig

logger = logging.getLogger("bastion.auth.keys")


def channel(config: RedisConfig) -> str:
    return f"{config.key_prefix}keys:changes"


def client(config: RedisConfig) -> redis.Redis:
    assert config.url is not None
    return redis.Redis.from_url(
        config.url,
        socket_connect_timeout=config.connect_timeout,
        socket_timeout=max(config.command_timeout, 1.0),
    )


def message(kind: str, key_id: str, at: float) -> bytes:
    return orjson.dumps({"type": kind, "id": key_id, "at": at})


def publish(config: RedisConfig, kind: str, key_id: str, at: float) -> int | None:
    """Announce a change of ``key_id``; the number of gateways listening, or ``None`` when Redis
    could not be reached (they will see the change at their next store read)."""
    if config.url is None:
        return None
    connection = client(config)
    try:
        # redis-py's annotations of publish differ between its releases: read it as Any.
        publisher: Any = connection
        return int(publisher.publish(channel(config), message(kind, key_id, at)))
    except redis.RedisError as exc:
        logger.warning("key change not announced over Redis (%s)", type(exc).__name__)
        return None
    finally:
        connection.close()


def parse(data: object) -> tuple[str, str] | None:
    """``(type, key id)`` from a message, or ``None`` for anything malformed."""
    if not isinstance(data, bytes | str):
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    kind, key_id = doc.get("type"), doc.get("id")
    if isinstance(kind, str) and isinstance(key_id, str) and len(key_id) <= 64:
        return kind, key_id
    return None
